package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// The benchmark's HTTP client. On the benchmark's machine the generator
// shares the CPU with webhookd and PostgreSQL, so every microsecond it
// spends is taken from what it measures. net/http's client costs about
// 90 µs of CPU per request here (a request and header copy, a pooled
// connection, and a reader and a writer goroutine per connection, so two
// hand-offs per request). A benchmark worker instead owns one keep-alive
// connection, writes each request as bytes serialized before the load
// (by net/http's own Request.Write) and reads the answer with net/http's
// ReadResponse: the same HTTP/1.1 on the wire, without the machinery.

// wireRequests serializes one POST per event to target, as net/http would
// send it.
func wireRequests(target string, events []Event) ([][]byte, error) {
	out := make([][]byte, len(events))
	var buf bytes.Buffer
	for i, e := range events {
		req, err := deliveryRequest(context.Background(), target, e.Header, e.Body)
		if err != nil {
			return nil, err
		}
		buf.Reset()
		if err := req.Write(&buf); err != nil {
			return nil, fmt.Errorf("serialize request %d: %w", i, err)
		}
		out[i] = bytes.Clone(buf.Bytes())
	}
	return out, nil
}

// wireConn is one worker's keep-alive connection to webhookd.
type wireConn struct {
	addr string
	conn net.Conn
	r    *bufio.Reader
}

// do sends one serialized request and returns the answer's status. On any
// error the connection is dropped (the next request dials again).
func (c *wireConn) do(ctx context.Context, req []byte) (int, error) {
	if c.conn == nil {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", c.addr)
		if err != nil {
			return 0, err
		}
		c.conn, c.r = conn, bufio.NewReader(conn)
	}
	_ = c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.conn.Write(req); err != nil {
		c.close()
		return 0, err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		c.close()
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.Close {
		c.close()
	}
	return resp.StatusCode, err
}

func (c *wireConn) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn, c.r = nil, nil
	}
}
