package redact

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/lmittmann/tint"
)

// Log formats accepted by [ParseFormat] and [NewLogger]. JSON is for log
// shippers; text is for a developer's terminal. The empty format picks
// between them with [IsTerminal], so the same binary needs no setting in
// either place.
const (
	FormatJSON = "json"
	FormatText = "text"
)

// ParseFormat validates a LOG_FORMAT setting, ignoring case and
// surrounding space, so that a typo stops start-up instead of silently
// choosing a format. It returns FormatJSON, FormatText or "" (choose by
// terminal).
func ParseFormat(s string) (string, error) {
	switch f := strings.ToLower(strings.TrimSpace(s)); f {
	case FormatJSON, FormatText, "":
		return f, nil
	}
	return "", fmt.Errorf("invalid log format %q: want json or text (empty picks text on a terminal, json otherwise)", s)
}

// ParseLevel validates a LOG_LEVEL setting, ignoring case and surrounding
// space; "" means info. Unlike slog.Level's own parser it rejects offsets
// such as "info+2", which an operator would not expect to mean anything.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("invalid log level %q: want debug, info, warn or error (empty means info)", s)
}

// IsTerminal reports whether w is a character device, i.e. a person is
// probably watching. It decides the default log format here, and the
// long-running commands use it to choose between a progress display and
// quiet structured logs. It checks the file mode rather than issuing
// terminal ioctls, which keeps webhookd free of a terminal dependency.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || f == nil {
		return false
	}
	info, err := f.Stat()
	if err != nil {
		return false
	}
	return info.Mode()&os.ModeCharDevice != 0
}

// NewLogger builds the process logger writing to w at level (use
// [ParseLevel]) in format (use [ParseFormat]; "" picks text on a terminal
// and JSON otherwise). The handler is always wrapped by
// [NewRedactingHandler]: there is no option to turn redaction off, so
// that no configuration mistake can put personal data in the logs.
func NewLogger(w io.Writer, format string, level slog.Level) (*slog.Logger, error) {
	if w == nil {
		return nil, errors.New("redact: NewLogger needs a writer")
	}
	f, err := ParseFormat(format)
	if err != nil {
		return nil, err
	}
	return slog.New(NewRedactingHandler(newFormatHandler(w, f, level))), nil
}

// newFormatHandler builds the unredacted handler for a parsed format.
// Tests use it to show that the records they log would leak without the
// redacting wrapper.
func newFormatHandler(w io.Writer, format string, level slog.Level) slog.Handler {
	terminal := IsTerminal(w)
	if format == "" {
		format = FormatJSON
		if terminal {
			format = FormatText
		}
	}
	if format == FormatText {
		// Colours only where they are rendered: escape codes in a file
		// or a pipe make the text harder to read and to grep.
		return tint.NewHandler(w, &tint.Options{Level: level, NoColor: !terminal})
	}
	return slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
}
