package eventstore_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/eventstore"
)

// The INSERT text kept per batch size numbers its parameters row by row,
// each once, whichever size was asked for first, and stays the same text
// when asked again (from several goroutines: the writers share it).
func TestInsertQueryNumbersEveryParameterOnce(t *testing.T) {
	t.Parallel()
	for _, rows := range []int{3, 1, 64, 2, 3} {
		q, width := eventstore.InsertQuery(rows)
		require.Equal(t, 14, width, "uuid, payload, metadata and the eleven facts")
		values, ok := strings.CutPrefix(q, "INSERT INTO ledger_events (uuid, payload, metadata, svix_id, source, svix_timestamp, signature, event_type, subject_id, instance_id, event_time, timestamp_unit, received_at, source_ip) VALUES ")
		require.True(t, ok, q)
		values, ok = strings.CutSuffix(values, " ON CONFLICT (svix_id) DO NOTHING")
		require.True(t, ok, q)
		var want []string
		for r := range rows {
			var params []string
			for c := range width {
				params = append(params, fmt.Sprintf("$%d", r*width+c+1))
			}
			want = append(want, "("+strings.Join(params, ",")+")")
		}
		require.Equal(t, strings.Join(want, ","), values)
	}
	done := make(chan string)
	for range 8 {
		go func() { q, _ := eventstore.InsertQuery(5); done <- q }()
	}
	first, _ := eventstore.InsertQuery(5)
	for range 8 {
		require.Equal(t, first, <-done)
	}
}
