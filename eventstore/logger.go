package eventstore

import (
	"context"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
)

// levelNever is below any level webhookd can be configured to log.
const levelNever = slog.Level(-1000)

// WatermillLogger adapts logger for Watermill. Watermill's trace lines
// carry query arguments (raw event bodies) and are never logged; its info
// lines (handler start and stop) are demoted to debug.
//
// With is lazy: watermill-sql's subscriber calls it for every message it
// hands over, and slog's With makes the handler (the redacting one)
// process the fields at once, although the lines they are for are trace
// and debug lines that are almost never written (that was 2–3% of
// webhookd's CPU under load). Here the fields wait until a line is
// actually enabled.
func WatermillLogger(logger *slog.Logger) watermill.LoggerAdapter {
	return lazyLogger{logger: logger, inner: watermill.NewSlogLoggerWithLevelMapping(logger, map[slog.Level]slog.Level{
		watermill.LevelTrace: levelNever,
		slog.LevelInfo:       slog.LevelDebug,
	})}
}

type lazyLogger struct {
	logger *slog.Logger
	inner  watermill.LoggerAdapter
	fields watermill.LogFields
}

func (l lazyLogger) enabled(level slog.Level) bool {
	return l.logger.Enabled(context.Background(), level)
}

func (l lazyLogger) Error(msg string, err error, fields watermill.LogFields) {
	if l.enabled(slog.LevelError) {
		l.inner.Error(msg, err, l.fields.Add(fields))
	}
}

func (l lazyLogger) Info(msg string, fields watermill.LogFields) {
	if l.enabled(slog.LevelDebug) { // info is demoted to debug
		l.inner.Info(msg, l.fields.Add(fields))
	}
}

func (l lazyLogger) Debug(msg string, fields watermill.LogFields) {
	if l.enabled(slog.LevelDebug) {
		l.inner.Debug(msg, l.fields.Add(fields))
	}
}

// Trace is never logged (see WatermillLogger).
func (l lazyLogger) Trace(string, watermill.LogFields) {}

func (l lazyLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return lazyLogger{logger: l.logger, inner: l.inner, fields: l.fields.Add(fields)}
}
