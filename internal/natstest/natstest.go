// Package natstest gives tests a real NATS JetStream: the shared server at
// TEST_NATS_URL (default nats://127.0.0.1:4222) with a stream name of
// their own, or a nats-server of their own that they can stop and start.
//
// When NATS cannot be reached the test is skipped with a line saying what
// to start, unless WEBHOOKD_REQUIRE_NATS=1 (CI), which makes it a failure.
package natstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// DefaultURL is used when TEST_NATS_URL is not set.
const DefaultURL = "nats://127.0.0.1:4222"

// URL returns the shared server's URL once it answers JetStream requests.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("TEST_NATS_URL")
	if u == "" {
		u = DefaultURL
	}
	nc, err := nats.Connect(u, nats.Timeout(3*time.Second))
	if err == nil {
		defer nc.Close()
		js, jerr := jetstream.New(nc)
		if jerr == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err = js.AccountInfo(ctx)
		} else {
			err = jerr
		}
	}
	if err != nil {
		unavailable(t, fmt.Sprintf("NATS JetStream at %s (TEST_NATS_URL) did not answer: %v; start one with `nats-server -js` or set TEST_NATS_URL", u, err))
	}
	return u
}

func unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("WEBHOOKD_REQUIRE_NATS") == "1" {
		t.Fatalf("%s (WEBHOOKD_REQUIRE_NATS=1: a test that needs NATS must run)", why)
	}
	t.Skipf("skipped: %s (set WEBHOOKD_REQUIRE_NATS=1 to make this a failure)", why)
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9]+`)

// Stream returns a stream name no other test uses, and deletes the stream
// from the server at url when t ends.
func Stream(t testing.TB, url string) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := unsafeName.ReplaceAllString(t.Name(), "_")
	if len(name) > 60 {
		name = name[:60]
	}
	name = "T_" + name + "_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		nc, err := nats.Connect(url, nats.Timeout(2*time.Second))
		if err != nil {
			return
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = js.DeleteStream(ctx, name)
	})
	return name
}

// JetStream connects to url for the test's own reads.
func JetStream(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return nc, js
}

// Server is a nats-server of the test's own, with JetStream, on a port
// and store directory of its own.
type Server struct {
	t    testing.TB
	bin  string
	port int
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// StartServer starts nats-server (from PATH or /usr/sbin) for t; it is
// stopped when t ends.
func StartServer(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nats-server"); serr == nil {
			bin = "/usr/sbin/nats-server"
		} else {
			unavailable(t, "no nats-server binary in PATH or /usr/sbin (Debian: apt-get install nats-server)")
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	s := &Server{t: t, bin: bin, port: port, dir: t.TempDir()}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// URL is the server's client URL.
func (s *Server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

// Start starts the server (again, on the same port and store) and waits
// until it answers JetStream requests.
func (s *Server) Start() {
	s.t.Helper()
	if s.cmd != nil {
		return
	}
	var out strings.Builder
	cmd := exec.Command(s.bin, "-a", "127.0.0.1", "-p", fmt.Sprint(s.port), "-js", "-sd", s.dir)
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(s.t, cmd.Start())
	s.cmd, s.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		nc, err := nats.Connect(s.URL(), nats.Timeout(time.Second))
		if err == nil {
			js, _ := jetstream.New(nc)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err = js.AccountInfo(ctx)
			cancel()
			nc.Close()
			if err == nil {
				return
			}
		}
		select {
		case <-s.done:
			s.t.Fatalf("nats-server exited at start: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("nats-server on port %d did not answer within 30s: %v; output: %s", s.port, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the server (SIGTERM, then SIGKILL after 10s) and waits for it.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Message is a message as a stream holds it.
type Message struct {
	Seq     uint64
	Subject string
	Header  nats.Header
	Data    []byte
}

// ReadStream reads every message of stream on url, in stream order.
func ReadStream(t testing.TB, url, stream string) []Message {
	t.Helper()
	_, js := JetStream(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	var out []Message
	for uint64(len(out)) < info.State.Msgs {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		require.NoError(t, err)
		for m := range batch.Messages() {
			md, err := m.Metadata()
			require.NoError(t, err)
			out = append(out, Message{Seq: md.Sequence.Stream, Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
		}
		require.NoError(t, batch.Error())
		if ctx.Err() != nil {
			t.Fatalf("read %d of the stream's %d messages", len(out), info.State.Msgs)
		}
	}
	return out
}
