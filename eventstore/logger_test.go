package eventstore_test

import (
	"bytes"
	"errors"
	"log/slog"
	"sort"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/eventstore"
)

func TestWatermillLoggerLevelsAndFields(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		level slog.Level
		want  []string
	}{
		{slog.LevelInfo, []string{`level=ERROR msg="could not commit" consumer_group=projection.users error=boom msg_uuid=u1`}},
		{slog.LevelDebug, []string{
			`level=DEBUG msg="handler started" consumer_group=projection.users msg_uuid=u1`,
			`level=DEBUG msg="message acked" consumer_group=projection.users msg_uuid=u1 n=1`,
			`level=ERROR msg="could not commit" consumer_group=projection.users error=boom msg_uuid=u1`,
		}},
	} {
		var out bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{
			Level:       tc.level,
			ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr { return dropTime(a) },
		}))
		wl := eventstore.WatermillLogger(logger).
			With(watermill.LogFields{"consumer_group": "projection.users"}).
			With(watermill.LogFields{"msg_uuid": "u1"})
		wl.Trace("query", watermill.LogFields{"query_args": "a raw body"})
		wl.Info("handler started", nil)
		wl.Debug("message acked", watermill.LogFields{"n": 1})
		wl.Error("could not commit", errors.New("boom"), nil)
		require.Equal(t, tc.want, sortedFields(out.String()), "level %s", tc.level)
	}
}

// sortedFields returns the lines of out with the attributes after msg in
// key order (Watermill passes fields as a map).
func sortedFields(out string) []string {
	var lines []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		head, rest, _ := strings.Cut(line, `" `)
		attrs := strings.Fields(rest)
		sort.Strings(attrs)
		lines = append(lines, head+`" `+strings.Join(attrs, " "))
	}
	return lines
}

func dropTime(a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}
