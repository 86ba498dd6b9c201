package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// alertRulesFile is the example rules file the README points operators to.
const alertRulesFile = "../../docs/alerts/webhookd.rules.yml"

var (
	webhookdSelector = regexp.MustCompile(`\b(webhookd_[a-z_]+)(\{[^}]*\})?`)
	labelMatcher     = regexp.MustCompile(`([a-z_]+)\s*(=~|!=|!~|=)\s*"([^"]*)"`)
)

// Every webhookd series an alert selects is on /metrics of a webhookd that
// has not had a single delivery yet: an alert on a metric or label value
// that does not exist would never fire, and a counter that appears only at
// its first increment hides that increment from rate() and increase().
func TestAlertRulesSelectSeriesWebhookdExports(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(alertRulesFile)
	require.NoError(t, err)
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &rules))

	// The seal alerts assume sealing is on, the reconcile alerts periodic
	// reconciliation (whose first run is an hour away).
	_, apiURL := fakeClerk(t, "sk_test_x")
	h := start(t, withSeal(sealKey), withReconcile(apiURL, time.Hour))
	var m samples
	require.Eventually(t, func() bool {
		m = scrape(t, h)
		return m.value("webhookd_projection_lag_up") == 1 && m.value("webhookd_ledger_unsealed_up") == 1
	}, 10*time.Second, 10*time.Millisecond, "projection lag measured")

	selected := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			for _, sel := range webhookdSelector.FindAllStringSubmatch(r.Expr, -1) {
				selected++
				name := strings.TrimSuffix(sel[1], "_bucket")
				if name != sel[1] {
					name += "_count" // scrape records histograms as _count and _sum
				}
				var want []string
				for _, lm := range labelMatcher.FindAllStringSubmatch(sel[2], -1) {
					require.Equal(t, "=", lm[2], "%s: %s: only = matchers are checked here", r.Alert, sel[0])
					want = append(want, lm[1]+"="+`"`+lm[3]+`"`)
				}
				require.True(t, hasSeries(m, name, want), "%s selects %s, which a fresh webhookd does not export", r.Alert, sel[0])
			}
		}
	}
	require.GreaterOrEqual(t, selected, 12, "the rules file's webhookd selectors")
}

// hasSeries reports whether m holds a series of name with every label pair
// in labels (written as in samples' keys, label="value").
func hasSeries(m samples, name string, labels []string) bool {
	for k := range m {
		if k != name && !strings.HasPrefix(k, name+"{") {
			continue
		}
		pairs := strings.Split(strings.TrimSuffix(strings.TrimPrefix(k, name+"{"), "}"), ",")
		all := true
		for _, l := range labels {
			found := false
			for _, p := range pairs {
				found = found || p == l
			}
			all = all && found
		}
		if all {
			return true
		}
	}
	return false
}
