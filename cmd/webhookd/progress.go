package main

import (
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/webhookd/webhookd/audit/redact"
)

// progressLogEvery is how often a long operation logs its progress when
// stderr is not a terminal.
const progressLogEvery = 5 * time.Second

// newProgress returns a progress callback for a long operation (replay,
// export, verify): a bar with count, rate and time left on a terminal, and
// a structured log line every few seconds otherwise. finish ends the bar.
func newProgress(logger *slog.Logger, operation string) (report func(done, total int64), finish func()) {
	return newProgressOf(logger, operation, "events")
}

// newProgressOf is newProgress counting unit ("events", "users").
func newProgressOf(logger *slog.Logger, operation, unit string) (report func(done, total int64), finish func()) {
	if redact.IsTerminal(os.Stderr) {
		var bar *progressbar.ProgressBar
		return func(done, total int64) {
				if bar == nil {
					bar = progressbar.NewOptions64(total,
						progressbar.OptionSetDescription(operation),
						progressbar.OptionSetWriter(os.Stderr),
						progressbar.OptionShowCount(),
						progressbar.OptionShowIts(),
						progressbar.OptionSetItsString(unit),
						progressbar.OptionSetPredictTime(true),
						progressbar.OptionThrottle(100*time.Millisecond),
						progressbar.OptionFullWidth(),
					)
				}
				if done > bar.GetMax64() {
					bar.ChangeMax64(done)
				}
				_ = bar.Set64(done)
			}, func() {
				if bar != nil {
					_ = bar.Finish()
					_, _ = os.Stderr.WriteString("\n")
				}
			}
	}
	var (
		mu    sync.Mutex
		last  time.Time
		start = time.Now()
	)
	return func(done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) < progressLogEvery && done < total {
			return
		}
		last = time.Now()
		elapsed := time.Since(start).Seconds()
		rate := float64(done) / max(elapsed, 1e-9)
		attrs := []any{slog.String("operation", operation), slog.Int64("done", done), slog.Int64("total", total),
			slog.Float64("per_second", float64(int64(rate)))}
		if rate > 0 && total > done {
			attrs = append(attrs, slog.Duration("eta", time.Duration(float64(total-done)/rate*float64(time.Second)).Round(time.Second)))
		}
		logger.Info("progress", attrs...)
	}, func() {}
}
