package main

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Log lines write durations as durations ("15s"), at any nesting and in
// attributes added with With, not as slog's JSON nanoseconds.
func TestLogLinesWriteDurationsAsDurations(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	logger, err := (&Globals{LogFormat: "json", LogLevel: "info", Stderr: &out}).Logger()
	require.NoError(t, err)
	logger.With(slog.Duration("poll", 25*time.Millisecond)).WithGroup("g").Info("webhookd_stopping",
		slog.Duration("drain_timeout", 15*time.Second),
		"eta", 90*time.Second,
		slog.Group("seal", slog.Duration("interval", time.Second), slog.Int("size", 3)),
		slog.Int64("not_a_duration", 15000000000))
	line := out.String()
	require.Contains(t, line, `"poll":"25ms"`)
	require.Contains(t, line, `"g":{"drain_timeout":"15s","eta":"1m30s","seal":{"interval":"1s","size":3},"not_a_duration":15000000000}`)
	require.NotContains(t, line, "15000000000,")
}
