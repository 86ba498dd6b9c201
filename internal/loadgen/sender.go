package loadgen

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/webhookd/webhookd/internal/clerkfake"
)

// Sender delivers events as Svix does: it signs each attempt afresh,
// keeps the svix-id across attempts, and retries anything that is not a 2xx
// (including a connection error) with a growing backoff until the event is
// accepted or the context ends. Svix waits 5 s, 5 min, 30 min…; a drill
// scales that down with Backoff.
type Sender struct {
	// Secret signs every attempt.
	Secret string
	// URLs are the endpoints; event i goes to URLs[i % len(URLs)], as a
	// load balancer in front of several webhookd processes would spread
	// them. A retry may go to the next one.
	URLs []string
	// Backoff is the wait before the first retry; each retry doubles it up
	// to MaxBackoff. Defaults to 50 ms.
	Backoff time.Duration
	// MaxBackoff caps the wait. Defaults to 1 s.
	MaxBackoff time.Duration
	// Client defaults to a client with a 10 s timeout.
	Client *http.Client

	stats Stats
}

// Stats counts what a Sender saw.
type Stats struct {
	// Delivered counts events answered 2xx (each once).
	Delivered atomic.Int64
	// Attempts counts requests, retries included.
	Attempts atomic.Int64
	// ConnErrs counts attempts that got no answer (refused, reset, timed out).
	ConnErrs atomic.Int64
	// Statuses counts non-2xx answers by status code.
	Statuses sync.Map // int → *atomic.Int64
	// RetryAfter503 counts 503 answers that carried a Retry-After header.
	RetryAfter503 atomic.Int64
}

// Stats returns the sender's counters.
func (s *Sender) Stats() *Stats { return &s.stats }

// StatusCount returns how many answers had the given status.
func (st *Stats) StatusCount(status int) int64 {
	if v, ok := st.Statuses.Load(status); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

func (st *Stats) count(status int) {
	v, _ := st.Statuses.LoadOrStore(status, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// Send delivers e, retrying until a 2xx. It returns the context's error if
// ctx ends first.
func (s *Sender) Send(ctx context.Context, i int, e Event) error {
	client := s.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	backoff, maxBackoff := s.Backoff, s.MaxBackoff
	if backoff <= 0 {
		backoff = 50 * time.Millisecond
	}
	if maxBackoff <= 0 {
		maxBackoff = time.Second
	}
	for attempt := 0; ; attempt++ {
		h, err := clerkfake.Sign(s.Secret, e.MsgID, time.Now(), e.Body)
		if err != nil {
			return err
		}
		s.stats.Attempts.Add(1)
		url := s.URLs[(i+attempt)%len(s.URLs)]
		status, retryAfter, err := post(ctx, client, url, h, e.Body)
		switch {
		case err != nil:
			s.stats.ConnErrs.Add(1)
		case status >= 200 && status <= 299:
			s.stats.Delivered.Add(1)
			return nil
		default:
			s.stats.count(status)
			if status == http.StatusServiceUnavailable && retryAfter != "" {
				s.stats.RetryAfter503.Add(1)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// SendAll sends events with concurrency workers, each event until it is
// accepted. It returns the first context error.
func (s *Sender) SendAll(ctx context.Context, events []Event, concurrency int) error {
	next := atomic.Int64{}
	var wg sync.WaitGroup
	errs := make(chan error, concurrency)
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(events) {
					return
				}
				if err := s.Send(ctx, i, events[i]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// post sends one attempt and returns the status and the Retry-After header.
func post(ctx context.Context, client *http.Client, url string, h http.Header, body []byte) (int, string, error) {
	req, err := deliveryRequest(ctx, url, h, body)
	if err != nil {
		return 0, "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), nil
}

// deliveryRequest is a Clerk delivery as Svix sends it: the signed
// headers, a JSON body, Svix's user agent.
func deliveryRequest(ctx context.Context, url string, h http.Header, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", clerkfake.UserAgent)
	return req, nil
}
