package main

import (
	"log/slog"
	"os"

	"github.com/webhookd/webhookd/audit"
)

// Globals are the settings every subcommand shares.
type Globals struct {
	LogFormat string `env:"LOG_FORMAT" default:"" help:"Log format: json or text. Defaults to json, or text when stderr is a terminal."`
	LogLevel  string `env:"LOG_LEVEL" default:"info" help:"Log level: debug, info, warn or error."`
}

// Logger builds the process logger; every line goes through the redacting
// handler of package audit.
func (g *Globals) Logger() (*slog.Logger, error) {
	format, err := audit.ParseFormat(g.LogFormat)
	if err != nil {
		return nil, err
	}
	level, err := audit.ParseLevel(g.LogLevel)
	if err != nil {
		return nil, err
	}
	return audit.NewLogger(os.Stderr, format, level)
}
