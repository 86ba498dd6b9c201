package clerkfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// API is a fake of the part of Clerk's Backend API that reconciliation
// reads, speaking Clerk's JSON, for use through Clerk's own Go SDK (point
// CLERK_API_URL at an httptest server running it):
//
//   - GET /v1/users?limit=&offset= returns a JSON array of user objects
//     in the order they were added (a test adds them oldest first, which
//     is order_by=+created_at); limit defaults to 10 and is refused above
//     500, as Clerk does;
//   - GET /v1/users/count returns {"object":"total_count","total_count":n};
//   - GET /v1/users/{id} returns the user, or 404 with Clerk's
//     resource_not_found error;
//   - GET /v1/organizations?limit=&offset= returns
//     {"data":[…],"total_count":n}, organizations in the order they were
//     added; GET /v1/organizations/{id} returns one or 404;
//   - GET /v1/organizations/{id}/memberships?limit=&offset=&user_id=
//     returns {"data":[…],"total_count":n}, the organization's
//     memberships in the order they were added (only user_id's when
//     given), or 404 when the organization is unknown;
//   - every request needs "Authorization: Bearer <SecretKey>", else 401
//     with Clerk's authentication_invalid error.
//
// Fault, when set, can answer any request first (a 429 with Retry-After,
// a 503), to test retries. It is safe for concurrent use.
type API struct {
	// SecretKey is the key requests must carry.
	SecretKey string
	// Fault is called with each authenticated request and its number
	// (from 1); when it returns a status, the request is answered with it
	// (and header) and nothing else.
	Fault func(r *http.Request, n int64) (status int, header http.Header)

	requests atomic.Int64
	mu       sync.RWMutex
	order    []string
	users    map[string][]byte
	orgs     listing
	// members are each organization's memberships; memberOrg is each
	// membership's organization.
	members   map[string]*listing
	memberOrg map[string]string
}

// listing is objects by id, in the order they were added.
type listing struct {
	order []string
	byID  map[string][]byte
}

func (l *listing) put(id string, raw []byte) {
	if l.byID == nil {
		l.byID = map[string][]byte{}
	}
	if _, ok := l.byID[id]; !ok {
		l.order = append(l.order, id)
	}
	l.byID[id] = raw
}

func (l *listing) delete(id string) {
	if _, ok := l.byID[id]; !ok {
		return
	}
	delete(l.byID, id)
	for i, x := range l.order {
		if x == id {
			l.order = append(l.order[:i], l.order[i+1:]...)
			break
		}
	}
}

// NewAPI returns an empty fake API that accepts secretKey.
func NewAPI(secretKey string) *API {
	return &API{SecretKey: secretKey, users: map[string][]byte{}, members: map[string]*listing{}, memberOrg: map[string]string{}}
}

// APIOrganization returns an organization object as Clerk's Backend API
// returns it (organization.updated's data): o.ID is its id, o.Time its
// updated_at, o.CreatedAt its created_at.
func APIOrganization(o Options) ([]byte, error) {
	data, err := BuildData("organization.updated", o)
	if err != nil {
		return nil, err
	}
	return json.Marshal(data)
}

// APIMembership returns an organization membership object as Clerk's
// Backend API returns it (organizationMembership.updated's data): o.ID is
// its id, o.OrgID its organization, o.UserID its user, o.Time its
// updated_at.
func APIMembership(o Options) ([]byte, error) {
	data, err := BuildData("organizationMembership.updated", o)
	if err != nil {
		return nil, err
	}
	return json.Marshal(data)
}

// PutOrganization adds an organization object (or replaces the one with
// its id, keeping its place in the listing).
func (a *API) PutOrganization(org []byte) error {
	var head struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(org, &head); err != nil || head.ID == "" {
		return fmt.Errorf("clerkfake: not an organization object with an id")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.orgs.put(head.ID, org)
	if a.members[head.ID] == nil {
		a.members[head.ID] = &listing{}
	}
	return nil
}

// DeleteOrganization removes organization id and its memberships, as
// deleting it in Clerk does.
func (a *API) DeleteOrganization(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.orgs.delete(id)
	if l := a.members[id]; l != nil {
		for _, m := range l.order {
			delete(a.memberOrg, m)
		}
	}
	delete(a.members, id)
}

// PutMembership adds a membership object to the organization it names
// (which must have been put), or replaces the one with its id.
func (a *API) PutMembership(membership []byte) error {
	var head struct {
		ID           string `json:"id"`
		Organization struct {
			ID string `json:"id"`
		} `json:"organization"`
	}
	if err := json.Unmarshal(membership, &head); err != nil || head.ID == "" || head.Organization.ID == "" {
		return fmt.Errorf("clerkfake: not a membership object with an id and an organization")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	l := a.members[head.Organization.ID]
	if l == nil {
		return fmt.Errorf("clerkfake: membership of an unknown organization")
	}
	l.put(head.ID, membership)
	a.memberOrg[head.ID] = head.Organization.ID
	return nil
}

// DeleteMembership removes membership id, as removing a member in Clerk
// does.
func (a *API) DeleteMembership(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if l := a.members[a.memberOrg[id]]; l != nil {
		l.delete(id)
	}
	delete(a.memberOrg, id)
}

// Organization returns organization id's object, or nil.
func (a *API) Organization(id string) []byte {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.orgs.byID[id]
}

// OrganizationIDs returns the ids of the organizations, in listing order.
func (a *API) OrganizationIDs() []string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return append([]string(nil), a.orgs.order...)
}

// Memberships returns every membership object, by id.
func (a *API) Memberships() map[string][]byte {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := map[string][]byte{}
	for _, l := range a.members {
		for id, raw := range l.byID {
			out[id] = raw
		}
	}
	return out
}

// APIUser returns a user object as Clerk's Backend API returns it (the
// UserJSON of user.updated's data): with a Seed, o.Time sets updated_at
// and o.CreatedAt created_at.
func APIUser(o Options) ([]byte, error) {
	data, err := BuildData("user.updated", o)
	if err != nil {
		return nil, err
	}
	return json.Marshal(data)
}

// Put adds a user object (or replaces the one with its id, keeping its
// place in the listing).
func (a *API) Put(user []byte) error {
	var head struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(user, &head); err != nil || head.ID == "" {
		return fmt.Errorf("clerkfake: not a user object with an id")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.users[head.ID]; !ok {
		a.order = append(a.order, head.ID)
	}
	a.users[head.ID] = user
	return nil
}

// Delete removes user id, as deleting it in Clerk does.
func (a *API) Delete(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.users[id]; !ok {
		return
	}
	delete(a.users, id)
	for i, x := range a.order {
		if x == id {
			a.order = append(a.order[:i], a.order[i+1:]...)
			break
		}
	}
}

// User returns user id's object, or nil.
func (a *API) User(id string) []byte {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.users[id]
}

// IDs returns the ids of the users, in listing order.
func (a *API) IDs() []string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return append([]string(nil), a.order...)
}

// Requests is how many requests the API received.
func (a *API) Requests() int64 { return a.requests.Load() }

func clerkError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"errors":         []any{map[string]any{"code": code, "message": message, "long_message": message}},
		"clerk_trace_id": "fake",
	})
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := a.requests.Add(1)
	if r.Header.Get("Authorization") != "Bearer "+a.SecretKey || a.SecretKey == "" {
		clerkError(w, http.StatusUnauthorized, "authentication_invalid", "Invalid authentication")
		return
	}
	if a.Fault != nil {
		if status, header := a.Fault(r, n); status != 0 {
			for k, v := range header {
				w.Header()[k] = v
			}
			clerkError(w, status, "fault", http.StatusText(status))
			return
		}
	}
	if r.Method != http.MethodGet {
		clerkError(w, http.StatusMethodNotAllowed, "method_not_allowed", "Only GET is faked")
		return
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, "/v1/organizations"); ok {
		a.organizations(w, r, rest)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/users")
	switch {
	case !ok:
		clerkError(w, http.StatusNotFound, "resource_not_found", "Resource not found")
	case rest == "" || rest == "/":
		a.list(w, r)
	case rest == "/count":
		a.mu.RLock()
		total := len(a.order)
		a.mu.RUnlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"object":"total_count","total_count":%d}`, total)
	default:
		u := a.User(strings.TrimPrefix(rest, "/"))
		if u == nil {
			clerkError(w, http.StatusNotFound, "resource_not_found", "Resource not found")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(u)
	}
}

// page reads limit and offset as Clerk does (limit 1 to 500, default 10),
// or answers 422 and returns ok false.
func page(w http.ResponseWriter, r *http.Request) (limit, offset int, ok bool) {
	limit, offset = 10, 0
	q := r.URL.Query()
	if s := q.Get("limit"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > 500 {
			clerkError(w, http.StatusUnprocessableEntity, "form_param_value_invalid", "limit must be between 1 and 500")
			return 0, 0, false
		}
		limit = v
	}
	if s := q.Get("offset"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			clerkError(w, http.StatusUnprocessableEntity, "form_param_value_invalid", "offset must be at least 0")
			return 0, 0, false
		}
		offset = v
	}
	return limit, offset, true
}

func (a *API) list(w http.ResponseWriter, r *http.Request) {
	limit, offset, ok := page(w, r)
	if !ok {
		return
	}
	a.mu.RLock()
	var buf []byte
	buf = append(buf, '[')
	for i := offset; i < len(a.order) && i < offset+limit; i++ {
		if i > offset {
			buf = append(buf, ',')
		}
		buf = append(buf, a.users[a.order[i]]...)
	}
	a.mu.RUnlock()
	buf = append(buf, ']')
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(buf)
}

// organizations serves /v1/organizations…; rest is the path after it.
func (a *API) organizations(w http.ResponseWriter, r *http.Request, rest string) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	rest = strings.Trim(rest, "/")
	id, sub, _ := strings.Cut(rest, "/")
	switch {
	case id == "":
		limit, offset, ok := page(w, r)
		if ok {
			writeList(w, a.orgs.order, a.orgs.byID, limit, offset)
		}
	case sub == "":
		org := a.orgs.byID[id]
		if org == nil {
			clerkError(w, http.StatusNotFound, "resource_not_found", "Resource not found")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(org)
	case sub == "memberships":
		l := a.members[id]
		if l == nil {
			clerkError(w, http.StatusNotFound, "resource_not_found", "Resource not found")
			return
		}
		limit, offset, ok := page(w, r)
		if !ok {
			return
		}
		order := l.order
		if users := r.URL.Query()["user_id"]; len(users) > 0 {
			order = nil
			for _, m := range l.order {
				var head struct {
					PublicUserData struct {
						UserID string `json:"user_id"`
					} `json:"public_user_data"`
				}
				if json.Unmarshal(l.byID[m], &head) == nil && slices.Contains(users, head.PublicUserData.UserID) {
					order = append(order, m)
				}
			}
		}
		writeList(w, order, l.byID, limit, offset)
	default:
		clerkError(w, http.StatusNotFound, "resource_not_found", "Resource not found")
	}
}

// writeList writes a page of Clerk's paginated list:
// {"data":[…],"total_count":n}.
func writeList(w http.ResponseWriter, order []string, byID map[string][]byte, limit, offset int) {
	buf := append([]byte(nil), `{"data":[`...)
	for i := offset; i < len(order) && i < offset+limit; i++ {
		if i > offset {
			buf = append(buf, ',')
		}
		buf = append(buf, byID[order[i]]...)
	}
	buf = append(buf, `],"total_count":`...)
	buf = strconv.AppendInt(buf, int64(len(order)), 10)
	buf = append(buf, '}')
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(buf)
}
