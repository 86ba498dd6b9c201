package redact_test

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/webhookd/webhookd/audit/redact"
)

// The redacting handler wraps any slog handler. Here the time is dropped
// so the output is stable; webhookd itself uses redact.NewLogger.
func ExampleNewRedactingHandler() {
	inner := slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})
	logger := slog.New(redact.NewRedactingHandler(inner))

	logger.Info("welcome mail sent to ann.lee@example.com",
		"svix_id", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
		"clerk_id", "user_29w83sxmDNGwOuEthce5gg56FcC",
		"remote_addr", "54.164.207.221:443",
		slog.Group("user",
			"first_name", "Ann",
			"phone", "+1 555 123 4567",
			"note", "call (555) 123-4567 after 5pm",
			"created_at", int64(1654012591514)))
	// Output:
	// {"level":"INFO","msg":"welcome mail sent to [REDACTED]","svix_id":"msg_2KWPBgLlAfxdpx2AI54pPJ85f4W","clerk_id":"user_29w83sxmDNGwOuEthce5gg56FcC","remote_addr":"54.164.207.221:443","user":{"first_name":"[REDACTED]","phone":"[REDACTED]","note":"call [REDACTED] after 5pm","created_at":1654012591514}}
}

// SafeError is for error text that leaves the process by another route
// than the logger, such as a column in a dead-letter table.
func ExampleSafeError() {
	body := errors.New(`unexpected field: {"first_name":"Ann","email_addresses":[]}`)
	err := fmt.Errorf("user user_29w83sxmDNGwOuEthce5gg56FcC (ann@example.com): %w", body)
	fmt.Println(redact.SafeError(err))
	// Output:
	// user user_29w83sxmDNGwOuEthce5gg56FcC ([REDACTED]): unexpected field: [REDACTED]
}
