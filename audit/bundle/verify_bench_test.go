package bundle_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/webhookd/webhookd/audit/bundle"
	"github.com/webhookd/webhookd/audit/merkle"
	"github.com/webhookd/webhookd/audit/seal"
	"github.com/webhookd/webhookd/domain"
)

// syntheticLedger is an in-memory ledger of n generated entries, the data
// source for writing a large bundle offline with the real exporter.
type syntheticLedger struct {
	n      int
	leaves []merkle.Hash
	cp     seal.Checkpoint
}

func newSyntheticLedger(n int) *syntheticLedger { return newSyntheticLedgerSignedBy(n, testKey) }

// newSyntheticLedgerSignedBy is newSyntheticLedger with its checkpoint
// signed by key.
func newSyntheticLedgerSignedBy(n int, key ed25519.PrivateKey) *syntheticLedger {
	l := &syntheticLedger{n: n, leaves: make([]merkle.Hash, n)}
	for i := range n {
		e := seal.EntryFromLedger(syntheticEntry(i))
		l.leaves[i] = seal.ComputeLeafHash(&e)
	}
	l.cp = seal.SignCheckpoint(key, uint64(n), merkle.NewTree(l.leaves).Root(), time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
	return l
}

// syntheticEntry is a user.deleted-sized Clerk event (about 400 bytes).
func syntheticEntry(i int) domain.LedgerEntry {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
	id := fmt.Sprintf("user_2%026d", i)
	body := fmt.Sprintf(`{"data":{"deleted":true,"id":%q,"object":"user"},"event_attributes":{"http_request":{"client_ip":"192.0.2.%d","user_agent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36"}},"instance_id":"ins_2g7np7Hrk0SN6kj5EDMLDaKNL0S","object":"event","timestamp":%d,"type":"user.deleted"}`,
		id, i%250+1, at.UnixMilli())
	return domain.LedgerEntry{
		Offset: int64(i + 1), SvixID: "msg_" + strconv.Itoa(i), SvixTimestamp: at, Signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
		Source: domain.SourceClerk, EventType: "user.deleted", SubjectID: id, InstanceID: "ins_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
		EventTime: at, TimestampUnit: domain.UnitMilliseconds, ReceivedAt: at.Add(time.Millisecond), SourceIP: "54.164.207.221",
		Payload: []byte(body),
	}
}

func (l *syntheticLedger) LatestCheckpoint(context.Context) (seal.Checkpoint, error) {
	return l.cp, nil
}
func (l *syntheticLedger) LeafHashes(context.Context) ([]merkle.Hash, error) { return l.leaves, nil }

// Cosignatures: no witness cosigned the synthetic checkpoint.
func (l *syntheticLedger) Cosignatures(context.Context, uint64) ([]seal.Cosignature, error) {
	return nil, nil
}
func (l *syntheticLedger) SealedIndexRange(context.Context, bundle.Selection) (uint64, uint64, bool, error) {
	return 0, uint64(l.n - 1), true, nil
}
func (l *syntheticLedger) EachSealed(_ context.Context, q bundle.Selection, fn func(bundle.SealedRow) error) error {
	for i := q.FirstIndex; i <= q.LastIndex; i++ {
		if err := fn(bundle.SealedRow{Index: i, LeafHash: l.leaves[i], Entry: syntheticEntry(int(i))}); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkVerifyBundle verifies a bundle of 1,000,000 entries (set
// WEBHOOKD_BENCH_ENTRIES for another size), written offline once into a
// temporary directory. Run it with
//
//	go test ./audit/bundle/ -run '^$' -bench VerifyBundle -benchtime 1x -cpu 2
func BenchmarkVerifyBundle(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("WEBHOOKD_BENCH_ENTRIES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	dir := filepath.Join(b.TempDir(), "bundle")
	start := time.Now()
	m, err := bundle.Export(context.Background(), newSyntheticLedger(n), bundle.ExportOptions{Dir: dir, Actor: "bench", Key: testKey})
	if err != nil {
		b.Fatal(err)
	}
	var size int64
	for _, f := range m.Files {
		size += f.Bytes
	}
	b.Logf("wrote %d entries, %d MB, in %s", m.Entries, size>>20, time.Since(start).Round(time.Millisecond))
	cpu := cpuTime()
	for b.Loop() {
		r, err := bundle.VerifyBundle(context.Background(), dir, bundle.VerifyOptions{TrustedKeys: []ed25519.PublicKey{testPub}})
		if err != nil {
			b.Fatal(err)
		}
		if err := r.Err(); err != nil || r.Entries != n {
			b.Fatalf("verified %d entries: %v", r.Entries, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	b.ReportMetric(float64(size)*float64(b.N)/b.Elapsed().Seconds()/1e6, "MB/s")
	b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/1e3/float64(n*b.N), "cpu-µs/entry")
}

// BenchmarkVerifyArchive is BenchmarkVerifyBundle on the bundle archive
// (200,000 entries unless WEBHOOKD_BENCH_ENTRIES says otherwise), read as
// a stream:
//
//	go test ./audit/bundle/ -run '^$' -bench VerifyArchive -benchtime 1x -cpu 2
func BenchmarkVerifyArchive(b *testing.B) {
	n := 200_000
	if s := os.Getenv("WEBHOOKD_BENCH_ENTRIES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	path := filepath.Join(b.TempDir(), "bundle.tar.gz")
	if _, err := bundle.Export(context.Background(), newSyntheticLedger(n), bundle.ExportOptions{Archive: path, Actor: "bench", Key: testKey}); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("wrote %d entries, %d MB compressed", n, fi.Size()>>20)
	cpu := cpuTime()
	for b.Loop() {
		r, err := bundle.VerifyBundle(context.Background(), path, bundle.VerifyOptions{TrustedKeys: []ed25519.PublicKey{testPub}})
		if err != nil {
			b.Fatal(err)
		}
		if err := r.Err(); err != nil || r.Entries != n {
			b.Fatalf("verified %d entries: %v", r.Entries, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/1e3/float64(n*b.N), "cpu-µs/entry")
}
