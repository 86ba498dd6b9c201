package eventstore

import (
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
)

// levelNever is below any level webhookd can be configured to log.
const levelNever = slog.Level(-1000)

// WatermillLogger adapts logger for Watermill. Watermill's trace lines
// carry query arguments (raw event bodies) and are never logged; its info
// lines (handler start and stop) are demoted to debug.
func WatermillLogger(logger *slog.Logger) watermill.LoggerAdapter {
	return watermill.NewSlogLoggerWithLevelMapping(logger, map[slog.Level]slog.Level{
		watermill.LevelTrace: levelNever,
		slog.LevelInfo:       slog.LevelDebug,
	})
}
