package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/clerk/clerk-sdk-go/v2"
	"github.com/clerk/clerk-sdk-go/v2/user"
	"golang.org/x/time/rate"
)

// MaxPageSize is the largest page GET /v1/users returns (its limit
// parameter accepts 1 to 500).
const MaxPageSize = 500

// DefaultBudget is the default request budget per 10 seconds: half of the
// 100 requests per 10 s Clerk allows a development instance (production
// instances get 1,000), so a reconciliation leaves room for the
// application's own calls.
const DefaultBudget = 50

// ClientConfig configures a Client.
type ClientConfig struct {
	// SecretKey is Clerk's secret key (sk_…), CLERK_SECRET_KEY. Required.
	// It goes into the Authorization header and nowhere else.
	SecretKey string
	// APIURL is the Backend API's base URL, CLERK_API_URL. Defaults to
	// Clerk's public API (https://api.clerk.com/v1). A URL without a path
	// gets /v1, as Clerk's SDKs do.
	APIURL string
	// Budget is the most requests sent per 10 seconds, retries included.
	// Defaults to DefaultBudget; a negative value means no limit (tests,
	// benchmarks against a local fake).
	Budget int
	// MaxAttempts is how often one request is tried when Clerk answers
	// 429 or a transient 5xx, or the connection fails. Defaults to 6.
	MaxAttempts int
	// BaseBackoff is the first pause before retrying a 5xx or a failed
	// connection; it doubles at each attempt, with jitter, up to
	// MaxBackoff. Defaults to 500ms.
	BaseBackoff time.Duration
	// MaxBackoff caps a pause, Retry-After included. Defaults to 60s.
	MaxBackoff time.Duration
	// AttemptTimeout bounds one attempt (connection, headers and body).
	// Defaults to 30s.
	AttemptTimeout time.Duration
	// Transport is the HTTP transport under the retries. Defaults to
	// http.DefaultTransport.
	Transport http.RoundTripper
	// Retried, when set, is called before each retry with the status that
	// caused it (0 for a failed connection) and the pause.
	Retried func(status int, pause time.Duration)
}

// Client reads Clerk's Backend API through Clerk's Go SDK, under a
// request budget, retrying 429 (after Retry-After) and transient 5xx
// answers with backoff.
type Client struct {
	transport *retryTransport
	backend   clerk.Backend
	users     *user.Client
	requests  atomic.Int64
}

// NewClient returns a Client, or an error naming the setting at fault.
func NewClient(cfg ClientConfig) (*Client, error) {
	if strings.TrimSpace(cfg.SecretKey) == "" {
		return nil, errors.New("CLERK_SECRET_KEY is not set: reconciliation reads Clerk's Backend API with the instance's secret key (sk_…)")
	}
	apiURL := cfg.APIURL
	if apiURL == "" {
		apiURL = clerk.APIURL
	}
	u, err := url.Parse(apiURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("CLERK_API_URL is not an http(s) URL")
	}
	if strings.Trim(u.Path, "/") == "" {
		u.Path = "/v1"
	}
	if cfg.Budget == 0 {
		cfg.Budget = DefaultBudget
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 6
	}
	if cfg.BaseBackoff <= 0 {
		cfg.BaseBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Minute
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = 30 * time.Second
	}
	if cfg.Transport == nil {
		cfg.Transport = http.DefaultTransport
	}
	c := &Client{}
	t := &retryTransport{cfg: cfg, next: cfg.Transport, requests: &c.requests}
	if cfg.Budget > 0 {
		// Spread evenly over the 10 s window, with a burst of a tenth of
		// it: a full window's burst at start would meet Clerk's own
		// window just as hard.
		t.limiter = rate.NewLimiter(rate.Limit(float64(cfg.Budget)/10), max(1, cfg.Budget/10))
	}
	key, base := cfg.SecretKey, u.String()
	// No Timeout on the http.Client: it would bound the retries and
	// their pauses too; each attempt has its own (AttemptTimeout).
	bc := clerk.BackendConfig{HTTPClient: &http.Client{Transport: t}, URL: &base, Key: &key}
	c.transport = t
	c.backend = clerk.NewBackend(&bc)
	c.users = &user.Client{Backend: c.backend}
	return c, nil
}

// backendTransport is the transport under the SDK (for tests).
func (c *Client) backendTransport() *retryTransport { return c.transport }

// Requests is how many HTTP requests the client sent, retries included.
func (c *Client) Requests() int64 { return c.requests.Load() }

// CountUsers returns the number of users Clerk holds (GET /v1/users/count).
func (c *Client) CountUsers(ctx context.Context) (int64, error) {
	n, err := c.users.Count(ctx, &user.ListParams{})
	if err != nil {
		return 0, describe("GET /v1/users/count", err)
	}
	return n.TotalCount, nil
}

// rawUsers is a page of GET /v1/users kept as each user object's bytes:
// a snapshot in the ledger is the user as the API returned it.
type rawUsers []json.RawMessage

// Read implements clerk.ResponseReader.
func (*rawUsers) Read(*clerk.APIResponse) {}

// ListUsers returns the users at offset (at most limit, oldest first by
// created_at, so that users created during a run are appended at the end
// of the listing rather than shifting it), each as the API's bytes.
//
// It calls the SDK's backend directly rather than user.List, which sends
// a second request (GET /v1/users/count) for every page and decodes the
// users into structs, losing the bytes Clerk sent.
func (c *Client) ListUsers(ctx context.Context, offset, limit int) ([]json.RawMessage, error) {
	lim, off, order := int64(limit), int64(offset), "+created_at"
	params := &user.ListParams{ListParams: clerk.ListParams{Limit: &lim, Offset: &off}, OrderBy: &order}
	req := clerk.NewAPIRequest(http.MethodGet, "/users")
	req.SetParams(params)
	var page rawUsers
	if err := c.backend.Call(ctx, req, &page); err != nil {
		return nil, describe("GET /v1/users", err)
	}
	return page, nil
}

// GetUser returns the user id as the API returned it, or found false when
// Clerk answered 404 with its resource_not_found error. Any other answer
// is an error: an unexpected 404 (a wrong CLERK_API_URL, a proxy's page)
// must not read as "this user is gone".
func (c *Client) GetUser(ctx context.Context, id string) (raw json.RawMessage, found bool, err error) {
	path, err := clerk.JoinPath("/users", url.PathEscape(id))
	if err != nil {
		return nil, false, err
	}
	req := clerk.NewAPIRequest(http.MethodGet, path)
	var u rawUser
	err = c.backend.Call(ctx, req, &u)
	var apiErr *clerk.APIErrorResponse
	if errors.As(err, &apiErr) && apiErr.HTTPStatusCode == http.StatusNotFound && len(apiErr.Errors) > 0 && apiErr.Errors[0].Code == "resource_not_found" {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, describe("GET /v1/users/{id}", err)
	}
	return json.RawMessage(u), true, nil
}

// rawUser is the bytes of one user object.
type rawUser json.RawMessage

// Read implements clerk.ResponseReader.
func (*rawUser) Read(*clerk.APIResponse) {}

// UnmarshalJSON keeps the bytes.
func (u *rawUser) UnmarshalJSON(b []byte) error {
	*u = append((*u)[:0], b...)
	return nil
}

// APIError is a request Clerk's API did not answer with success. Its text
// names the request and the status or error codes, never the answer's
// messages (which may quote personal data) or the secret key.
type APIError struct {
	// Request is "GET /v1/users" and the like (no query, no user id).
	Request string
	// Status is the last HTTP status (0 when no answer came).
	Status int
	// Codes are Clerk's error codes (e.g. authentication_invalid).
	Codes []string
	// Attempts is how many times the request was tried.
	Attempts int
	// Cause names a failure without an answer ("connection failed", "timeout").
	Cause string
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString(e.Request)
	switch {
	case e.Status != 0:
		fmt.Fprintf(&b, " answered %d", e.Status)
	case e.Cause != "":
		b.WriteString(": " + e.Cause)
	default:
		b.WriteString(" failed")
	}
	if len(e.Codes) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(e.Codes, ", "))
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " after %d attempts", e.Attempts)
	}
	return b.String()
}

// describe turns what the SDK returned into an *APIError. The SDK's own
// errors quote Clerk's answer (messages, sometimes the whole body); they
// are never shown.
func describe(request string, err error) error {
	var ours *APIError
	if errors.As(err, &ours) {
		out := *ours
		out.Request = request
		return &out
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &APIError{Request: request, Cause: "cancelled"}
	}
	var apiErr *clerk.APIErrorResponse
	if errors.As(err, &apiErr) {
		out := &APIError{Request: request, Status: apiErr.HTTPStatusCode, Attempts: 1}
		for _, e := range apiErr.Errors {
			if safeCode(e.Code) {
				out.Codes = append(out.Codes, e.Code)
			}
		}
		return out
	}
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &syntaxErr) || errors.As(err, &typeErr) {
		return &APIError{Request: request, Cause: "the answer is not the JSON Clerk's API sends"}
	}
	return &APIError{Request: request, Cause: "unexpected answer"}
}

// safeCode keeps error codes that look like Clerk's (snake_case words).
func safeCode(code string) bool {
	return code != "" && len(code) <= 64 && strings.Trim(code, "abcdefghijklmnopqrstuvwxyz_0123456789") == ""
}

// retryTransport sends each request within the budget and retries 429
// (after its Retry-After), 500, 502, 503, 504 and failed connections, up
// to MaxAttempts. A request it gives up on, or any other answer but 2xx
// and 404, becomes an *APIError, so the SDK never sees (and never
// quotes) an error body; 404 goes through for GetUser to read Clerk's
// error code.
type retryTransport struct {
	cfg      ClientConfig
	next     http.RoundTripper
	limiter  *rate.Limiter
	requests *atomic.Int64
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	request := req.Method + " " + req.URL.Path
	for attempt := 1; ; attempt++ {
		if t.limiter != nil {
			if err := t.limiter.Wait(ctx); err != nil {
				return nil, &APIError{Request: request, Cause: "cancelled", Attempts: attempt - 1}
			}
		}
		t.requests.Add(1)
		actx, cancel := context.WithTimeout(ctx, t.cfg.AttemptTimeout)
		resp, err := t.next.RoundTrip(req.Clone(actx))
		status, pause := 0, time.Duration(0)
		switch {
		case err != nil:
			cancel()
			if ctx.Err() != nil {
				return nil, &APIError{Request: request, Cause: "cancelled", Attempts: attempt}
			}
			pause = t.backoff(attempt)
		case resp.StatusCode < 300 || resp.StatusCode == http.StatusNotFound:
			// The attempt's deadline covers reading the body too.
			resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
			return resp, nil
		case resp.StatusCode == http.StatusTooManyRequests:
			status = resp.StatusCode
			pause = retryAfter(resp.Header.Get("Retry-After"), time.Now())
			if pause <= 0 {
				pause = t.backoff(attempt)
			}
			pause = min(pause, t.cfg.MaxBackoff)
			discard(resp, cancel)
		case resp.StatusCode == 500, resp.StatusCode == 502, resp.StatusCode == 503, resp.StatusCode == 504:
			status = resp.StatusCode
			pause = t.backoff(attempt)
			if ra := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ra > pause {
				pause = min(ra, t.cfg.MaxBackoff)
			}
			discard(resp, cancel)
		default:
			// Not worth retrying (401, 403, 422, …): Clerk's error codes
			// say why.
			codes := errorCodes(resp)
			discard(resp, cancel)
			return nil, &APIError{Request: request, Status: resp.StatusCode, Codes: codes, Attempts: attempt}
		}
		if attempt >= t.cfg.MaxAttempts {
			e := &APIError{Request: request, Status: status, Attempts: attempt}
			if err != nil {
				e.Cause = "connection failed"
				if errors.Is(err, context.DeadlineExceeded) {
					e.Cause = fmt.Sprintf("no answer within %s", t.cfg.AttemptTimeout)
				}
			}
			return nil, e
		}
		if t.cfg.Retried != nil {
			t.cfg.Retried(status, pause)
		}
		timer := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, &APIError{Request: request, Cause: "cancelled", Attempts: attempt}
		case <-timer.C:
		}
	}
}

// backoff is the pause before retry attempt+1: BaseBackoff doubled at
// each attempt, capped at MaxBackoff, with full jitter over its upper half.
func (t *retryTransport) backoff(attempt int) time.Duration {
	d := t.cfg.BaseBackoff << min(attempt-1, 20)
	d = min(d, t.cfg.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date. It
// returns 0 when there is none or it is unreadable.
func retryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil {
		return time.Duration(max(s, 0)) * time.Second
	}
	if at, err := http.ParseTime(h); err == nil {
		return max(at.Sub(now), 0)
	}
	return 0
}

// errorCodes reads Clerk's error codes from an error answer (at most
// 64 KiB of it).
func errorCodes(resp *http.Response) []string {
	var body struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body) != nil {
		return nil
	}
	var codes []string
	for _, e := range body.Errors {
		if safeCode(e.Code) {
			codes = append(codes, e.Code)
		}
	}
	return codes
}

// discard reads (a bounded part of) an answer not used, so the connection
// can be reused, and releases the attempt.
func discard(resp *http.Response, cancel context.CancelFunc) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	cancel()
}

// cancelBody releases an attempt's context when its body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// rawList is a page of one of Clerk's paginated lists
// ({"data":[…],"total_count":n}), each object kept as the API's bytes.
type rawList struct {
	Data       []json.RawMessage `json:"data"`
	TotalCount int64             `json:"total_count"`
}

// Read implements clerk.ResponseReader.
func (*rawList) Read(*clerk.APIResponse) {}

// list gets one page of the list at path (offset, limit, oldest first by
// created_at, as ListUsers), with extra query parameters.
func (c *Client) list(ctx context.Context, path string, offset, limit int, extra url.Values) (rawList, error) {
	lim, off, order := int64(limit), int64(offset), "+created_at"
	params := &listParams{ListParams: clerk.ListParams{Limit: &lim, Offset: &off}, orderBy: order, extra: extra}
	req := clerk.NewAPIRequest(http.MethodGet, path)
	req.SetParams(params)
	var page rawList
	if err := c.backend.Call(ctx, req, &page); err != nil {
		return rawList{}, err
	}
	return page, nil
}

// listParams are a list's query: the SDK's paging, order_by and extras.
type listParams struct {
	clerk.APIParams
	clerk.ListParams
	orderBy string
	extra   url.Values
}

// ToQuery implements clerk.Params.
func (p *listParams) ToQuery() url.Values {
	q := p.ListParams.ToQuery()
	q.Set("order_by", p.orderBy)
	for k, v := range p.extra {
		q[k] = v
	}
	return q
}

// ListOrganizations returns the organizations at offset (at most limit,
// oldest first by created_at) as the API's bytes, and the total Clerk
// announced. Like ListUsers, it calls the SDK's backend directly rather
// than organization.List, which decodes into structs.
func (c *Client) ListOrganizations(ctx context.Context, offset, limit int) ([]json.RawMessage, int64, error) {
	page, err := c.list(ctx, "/organizations", offset, limit, nil)
	if err != nil {
		return nil, 0, describe("GET /v1/organizations", err)
	}
	return page.Data, page.TotalCount, nil
}

// GetOrganization returns organization id as the API returned it, or
// found false when Clerk answered 404 with its resource_not_found error
// (any other answer is an error, as for GetUser).
func (c *Client) GetOrganization(ctx context.Context, id string) (raw json.RawMessage, found bool, err error) {
	path, err := clerk.JoinPath("/organizations", url.PathEscape(id))
	if err != nil {
		return nil, false, err
	}
	var o rawUser
	err = c.backend.Call(ctx, clerk.NewAPIRequest(http.MethodGet, path), &o)
	if resourceNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, describe("GET /v1/organizations/{id}", err)
	}
	return json.RawMessage(o), true, nil
}

// ListMemberships returns the memberships of organization orgID at offset
// (at most limit, oldest first by created_at) as the API's bytes. An
// organization Clerk answers 404 for is an error here: the caller lists
// organizations it has just listed.
func (c *Client) ListMemberships(ctx context.Context, orgID string, offset, limit int) ([]json.RawMessage, error) {
	path, err := clerk.JoinPath("/organizations", url.PathEscape(orgID), "memberships")
	if err != nil {
		return nil, err
	}
	page, err := c.list(ctx, path, offset, limit, nil)
	if err != nil {
		return nil, describe("GET /v1/organizations/{id}/memberships", err)
	}
	return page.Data, nil
}

// FindMemberships returns the memberships of user userID in organization
// orgID (GET /v1/organizations/{org_id}/memberships?user_id=…: Clerk's
// Backend API has no GET for one membership, which it names by its
// organization and user), or orgFound false when Clerk answered 404 with
// resource_not_found for the organization.
func (c *Client) FindMemberships(ctx context.Context, orgID, userID string) (memberships []json.RawMessage, orgFound bool, err error) {
	path, err := clerk.JoinPath("/organizations", url.PathEscape(orgID), "memberships")
	if err != nil {
		return nil, false, err
	}
	page, err := c.list(ctx, path, 0, MaxPageSize, url.Values{"user_id": {userID}})
	if resourceNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, describe("GET /v1/organizations/{id}/memberships?user_id=", err)
	}
	return page.Data, true, nil
}

// resourceNotFound is Clerk's own 404 (resource_not_found), not a proxy's
// page or a wrong URL's.
func resourceNotFound(err error) bool {
	var apiErr *clerk.APIErrorResponse
	return errors.As(err, &apiErr) && apiErr.HTTPStatusCode == http.StatusNotFound && len(apiErr.Errors) > 0 && apiErr.Errors[0].Code == "resource_not_found"
}
