package clerkfake

import (
	"encoding/json"
	"fmt"
	"net/http"
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
}

// NewAPI returns an empty fake API that accepts secretKey.
func NewAPI(secretKey string) *API {
	return &API{SecretKey: secretKey, users: map[string][]byte{}}
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

func (a *API) list(w http.ResponseWriter, r *http.Request) {
	limit, offset := 10, 0
	q := r.URL.Query()
	if s := q.Get("limit"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > 500 {
			clerkError(w, http.StatusUnprocessableEntity, "form_param_value_invalid", "limit must be between 1 and 500")
			return
		}
		limit = v
	}
	if s := q.Get("offset"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			clerkError(w, http.StatusUnprocessableEntity, "form_param_value_invalid", "offset must be at least 0")
			return
		}
		offset = v
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
