package redact

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseLevel(t *testing.T) {
	t.Parallel()

	valid := map[string]slog.Level{
		"":        slog.LevelInfo,
		"debug":   slog.LevelDebug,
		"DEBUG":   slog.LevelDebug,
		"info":    slog.LevelInfo,
		" Info ":  slog.LevelInfo,
		"warn":    slog.LevelWarn,
		"WARN":    slog.LevelWarn,
		"error":   slog.LevelError,
		"Error\n": slog.LevelError,
	}
	for in, want := range valid {
		got, err := ParseLevel(in)
		require.NoError(t, err, "input %q", in)
		require.Equal(t, want, got, "input %q", in)
	}

	for _, in := range []string{"verbose", "warning", "info+2", "-4", "trace"} {
		_, err := ParseLevel(in)
		require.EqualError(t, err,
			`invalid log level "`+in+`": want debug, info, warn or error (empty means info)`)
	}
}

func TestParseFormat(t *testing.T) {
	t.Parallel()

	valid := map[string]string{"": "", "json": FormatJSON, "JSON": FormatJSON, " text ": FormatText, "Text": FormatText}
	for in, want := range valid {
		got, err := ParseFormat(in)
		require.NoError(t, err, "input %q", in)
		require.Equal(t, want, got, "input %q", in)
	}

	for _, in := range []string{"yaml", "logfmt", "tint", "console"} {
		_, err := ParseFormat(in)
		require.EqualError(t, err,
			`invalid log format "`+in+`": want json or text (empty picks text on a terminal, json otherwise)`)
	}
}

func TestNewLoggerFormats(t *testing.T) {
	t.Parallel()

	cases := []struct {
		format string
		check  func(t *testing.T, out string)
	}{
		{FormatJSON, func(t *testing.T, out string) {
			line := jsonLines(t, out)[0]
			require.Equal(t, "stored for [REDACTED]", line["msg"])
			require.Equal(t, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", line["svix_id"])
			require.Equal(t, Redacted, line["email"])
		}},
		{FormatText, func(t *testing.T, out string) {
			require.NotContains(t, out, "\x1b[", "no colour codes when not writing to a terminal")
			require.Contains(t, out, " INF stored for [REDACTED] svix_id=msg_2KWPBgLlAfxdpx2AI54pPJ85f4W email=[REDACTED]\n")
		}},
		// A buffer is not a terminal, so the default is JSON.
		{"", func(t *testing.T, out string) {
			require.True(t, strings.HasPrefix(out, "{"), out)
			require.Len(t, jsonLines(t, out), 1)
		}},
	}
	for _, tc := range cases {
		var buf bytes.Buffer
		logger, err := NewLogger(&buf, tc.format, slog.LevelInfo)
		require.NoError(t, err)
		logger.Debug("below the level, ann@example.com")
		logger.Info("stored for ann@example.com",
			"svix_id", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", "email", "ann@example.com")
		require.NotContains(t, buf.String(), "ann@example.com")
		require.NotContains(t, buf.String(), "below the level")
		tc.check(t, buf.String())
	}
}

func TestNewLoggerRejectsBadSettings(t *testing.T) {
	t.Parallel()

	_, err := NewLogger(&bytes.Buffer{}, "xml", slog.LevelInfo)
	require.EqualError(t, err, `invalid log format "xml": want json or text (empty picks text on a terminal, json otherwise)`)

	_, err = NewLogger(nil, FormatJSON, slog.LevelInfo)
	require.EqualError(t, err, "redact: NewLogger needs a writer")
}

func TestIsTerminal(t *testing.T) {
	t.Parallel()

	require.False(t, IsTerminal(&bytes.Buffer{}))
	require.False(t, IsTerminal((*os.File)(nil)))

	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	require.False(t, IsTerminal(f), "a regular file is not a terminal")

	r, w, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close(); _ = w.Close() })
	require.False(t, IsTerminal(w), "a pipe is not a terminal")
}
