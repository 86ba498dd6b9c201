package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/webhookd/webhookd/internal/natstest"
)

// alertRulesFile is the example rules file the README points operators to.
const alertRulesFile = "../../docs/alerts/webhookd.rules.yml"

var (
	webhookdSelector = regexp.MustCompile(`\b(webhookd_[a-z_]+)(\{[^}]*\})?`)
	labelMatcher     = regexp.MustCompile(`([a-z_]+)\s*(=~|!=|!~|=)\s*"([^"]*)"`)
)

// alertSelector is one webhookd series an alert rule selects: its name as
// scrape records it and its label pairs (label="value").
type alertSelector struct {
	alert, text, name string
	labels            []string
}

// forwarderSeries names the series only a webhookd with the NATS forwarder
// on (WEBHOOKD_FORWARD_NATS_URL) exports.
const forwarderSeries = "webhookd_forward_"

// alertSelectors returns every webhookd selector of the rules file.
func alertSelectors(t *testing.T) []alertSelector {
	t.Helper()
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
	var sels []alertSelector
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			for _, sel := range webhookdSelector.FindAllStringSubmatch(r.Expr, -1) {
				name := strings.TrimSuffix(sel[1], "_bucket")
				if name != sel[1] {
					name += "_count" // scrape records histograms as _count and _sum
				}
				var want []string
				for _, lm := range labelMatcher.FindAllStringSubmatch(sel[2], -1) {
					require.Equal(t, "=", lm[2], "%s: %s: only = matchers are checked here", r.Alert, sel[0])
					want = append(want, lm[1]+"="+`"`+lm[3]+`"`)
				}
				sels = append(sels, alertSelector{alert: r.Alert, text: sel[0], name: name, labels: want})
			}
		}
	}
	return sels
}

// Every webhookd series an alert selects is on /metrics of a webhookd that
// has not had a single delivery yet: an alert on a metric or label value
// that does not exist would never fire, and a counter that appears only at
// its first increment hides that increment from rate() and increase(). The
// forwarder's series are not there (it is off by default), so its alerts
// cannot fire without it; TestForwarderAlertRulesSelectSeriesWebhookdExports
// checks them on a webhookd that forwards.
func TestAlertRulesSelectSeriesWebhookdExports(t *testing.T) {
	t.Parallel()
	// The seal alerts assume sealing is on, the reconcile alerts periodic
	// reconciliation (whose first run is an hour away).
	_, apiURL := fakeClerk(t, "sk_test_x")
	h := start(t, withSeal(sealKey), withReconcile(apiURL, time.Hour))
	var m samples
	require.Eventually(t, func() bool {
		m = scrape(t, h)
		return m.value("webhookd_projection_lag_up") == 1 && m.value("webhookd_ledger_unsealed_up") == 1
	}, 10*time.Second, 10*time.Millisecond, "projection lag measured")

	selected, forwarder := 0, 0
	for _, sel := range alertSelectors(t) {
		if strings.HasPrefix(sel.name, forwarderSeries) {
			forwarder++
			require.False(t, hasSeries(m, sel.name, nil), "%s selects %s, which a webhookd without the forwarder must not export (the alert would fire there)", sel.alert, sel.text)
			continue
		}
		selected++
		require.True(t, hasSeries(m, sel.name, sel.labels), "%s selects %s, which a fresh webhookd does not export", sel.alert, sel.text)
	}
	require.GreaterOrEqual(t, selected, 12, "the rules file's webhookd selectors")
	require.GreaterOrEqual(t, forwarder, 3, "the rules file's forwarder selectors")
}

// Every forwarder series an alert selects is on /metrics of a webhookd
// started with the NATS forwarder on (and connected), before it forwarded
// anything. Needs NATS JetStream (natstest: skipped when it does not
// answer, a failure with WEBHOOKD_REQUIRE_NATS=1).
func TestForwarderAlertRulesSelectSeriesWebhookdExports(t *testing.T) {
	t.Parallel()
	url := natstest.URL(t)
	stream := natstest.Stream(t, url)
	h := start(t, withForward(url, stream, strings.ToLower(stream)))
	var m samples
	require.Eventually(t, func() bool {
		m = scrape(t, h)
		return m.value("webhookd_forward_lag_up") == 1 && m.value(`webhookd_forward_connected{stream="`+stream+`"}`) == 1
	}, 10*time.Second, 10*time.Millisecond, "forwarder lag measured and NATS connected")

	selected := 0
	for _, sel := range alertSelectors(t) {
		if !strings.HasPrefix(sel.name, forwarderSeries) {
			continue
		}
		selected++
		require.True(t, hasSeries(m, sel.name, sel.labels), "%s selects %s, which a webhookd with the forwarder on does not export", sel.alert, sel.text)
	}
	require.GreaterOrEqual(t, selected, 3, "the rules file's forwarder selectors")
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
