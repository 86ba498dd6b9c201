package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookd/webhookd/ingress"
	"github.com/webhookd/webhookd/internal/clerkfake"
)

// BenchmarkValidDeliveriesUnderSlowBodies measures the latency of valid
// deliveries (sequential, one client on 127.0.0.1) with no other traffic
// and during a slow-body attack: 70 connections from 127.0.0.2 that send
// headers (no signature) and then their body at 1 byte/s, each
// connecting again a second after it is answered or cut off. It reports p50 and
// p99 of the valid deliveries and the share answered 200 (a delivery
// answered otherwise is counted, not retried).
//
//	go test ./cmd/webhookd/ -run '^$' -bench ValidDeliveriesUnderSlowBodies -benchtime 2000x
func BenchmarkValidDeliveriesUnderSlowBodies(b *testing.B) {
	for _, attack := range []bool{false, true} {
		name := "quiet"
		if attack {
			name = "slow-bodies"
		}
		b.Run(name, func(b *testing.B) { benchSlowBodies(b, attack) })
	}
}

func benchSlowBodies(b *testing.B, attack bool) {
	app, _ := benchApp(b)
	url := "http://" + app.Addr() + ingress.WebhookPath
	body := clerkfake.MustBuild("user.created", clerkfake.Options{Seed: 7})

	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		attempts atomic.Int64
	)
	if attack {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
		head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: webhookd\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", ingress.WebhookPath)
		for range 70 {
			wg.Go(func() {
				for !stop.Load() {
					conn, err := d.Dial("tcp", app.Addr())
					if err != nil {
						time.Sleep(10 * time.Millisecond)
						continue
					}
					attempts.Add(1)
					answered := make(chan struct{})
					go func() {
						_, _ = io.Copy(io.Discard, conn) // until answered and closed
						close(answered)
					}()
					_, err = conn.Write([]byte(head))
				trickle:
					for err == nil && !stop.Load() {
						select {
						case <-answered:
							break trickle
						case <-time.After(time.Second):
							_, err = conn.Write([]byte(" "))
						}
					}
					conn.Close()
					<-answered
					// Connect again a second later: the attack keeps about
					// 70 slow connections open, rather than turning into
					// a connection flood, which is another attack.
					time.Sleep(time.Second)
				}
			})
		}
		time.Sleep(500 * time.Millisecond) // the attack is on
	}

	valid := http.DefaultClient
	latencies := make([]time.Duration, 0, b.N)
	ok := 0
	b.ResetTimer()
	for i := range b.N {
		h, err := clerkfake.Sign(testSecret, fmt.Sprintf("msg_valid_%d", i), time.Now(), body)
		if err != nil {
			b.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header = h
		t0 := time.Now()
		resp, err := valid.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		latencies = append(latencies, time.Since(t0))
		if resp.StatusCode == http.StatusOK {
			ok++
		}
	}
	b.StopTimer()
	stop.Store(true)
	wg.Wait()

	reportLatencies(b, latencies)
	b.ReportMetric(float64(ok)/float64(b.N)*100, "%ok")
	if attack {
		b.Logf("slow-body connections opened: %d", attempts.Load())
	}
}
