package main

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/webhookd/webhookd/audit/redact"
)

// Globals are the settings every subcommand shares.
type Globals struct {
	LogFormat string `env:"LOG_FORMAT" default:"" help:"Log format: json or text. Defaults to json, or text when stderr is a terminal."`
	LogLevel  string `env:"LOG_LEVEL" default:"info" help:"Log level: debug, info, warn or error."`

	// Stdout and Stderr receive what commands print (reports, banners,
	// notes) and the log lines; tests capture them. Default to os.Stdout
	// and os.Stderr.
	Stdout io.Writer `kong:"-"`
	Stderr io.Writer `kong:"-"`
}

func (g *Globals) stdout() io.Writer {
	if g.Stdout == nil {
		return os.Stdout
	}
	return g.Stdout
}

func (g *Globals) stderr() io.Writer {
	if g.Stderr == nil {
		return os.Stderr
	}
	return g.Stderr
}

// Logger builds the process logger; every line goes through the redacting
// handler of package redact, and durations are written as durations ("15s")
// rather than as slog's JSON nanoseconds (15000000000).
func (g *Globals) Logger() (*slog.Logger, error) {
	format, err := redact.ParseFormat(g.LogFormat)
	if err != nil {
		return nil, err
	}
	level, err := redact.ParseLevel(g.LogLevel)
	if err != nil {
		return nil, err
	}
	logger, err := redact.NewLogger(g.stderr(), format, level)
	if err != nil {
		return nil, err
	}
	return slog.New(durationText{logger.Handler()}), nil
}

// durationText writes every time.Duration attribute, at any nesting, as its
// String ("15s", "1m30s").
type durationText struct{ next slog.Handler }

func (h durationText) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h durationText) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(durationAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h durationText) WithAttrs(attrs []slog.Attr) slog.Handler {
	converted := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		converted[i] = durationAttr(a)
	}
	return durationText{h.next.WithAttrs(converted)}
}

func (h durationText) WithGroup(name string) slog.Handler {
	return durationText{h.next.WithGroup(name)}
}

func durationAttr(a slog.Attr) slog.Attr {
	switch v := a.Value.Resolve(); v.Kind() {
	case slog.KindDuration:
		return slog.String(a.Key, v.Duration().String())
	case slog.KindGroup:
		group := v.Group()
		converted := make([]any, len(group))
		for i, g := range group {
			converted[i] = durationAttr(g)
		}
		return slog.Group(a.Key, converted...)
	default:
		return slog.Attr{Key: a.Key, Value: v}
	}
}
