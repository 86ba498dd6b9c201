package admin

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/webhookd/webhookd/domain"
)

// Deliveries are Clerk deliveries appended per hour by event type, and
// rejected deliveries per hour, over the last Days days.
type Deliveries struct {
	Days  int       `json:"days"`
	Since time.Time `json:"since"`
	// Hours holds one element per hour from Since, oldest first.
	Hours []HourCounts `json:"hours"`
	// Types lists the event types drawn, most deliveries first (at most
	// chartTypes; the rest are counted as "other").
	Types  []string       `json:"types"`
	Totals map[string]int `json:"totals"`
	// RejectedSince is when the process began counting rejections (they
	// are kept in memory only).
	Rejected int `json:"rejected"`
}

// HourCounts is one hour of Deliveries.
type HourCounts struct {
	Hour     time.Time      `json:"hour"`
	ByType   map[string]int `json:"by_type"`
	Rejected int            `json:"rejected"`
}

// chartTypes is how many event types the chart tells apart.
const chartTypes = 6

const otherTypes = "other"

func (g *Integrity) deliveries(ctx context.Context, daysText string) (Deliveries, error) {
	days := 3
	if daysText != "" {
		n, err := strconv.Atoi(daysText)
		if err != nil || n < 1 || n > 7 {
			return Deliveries{}, domain.Errorf(domain.EINVALID, "invalid_days", "days must be 1 to 7")
		}
		days = n
	}
	now := g.server.cfg.Now().UTC()
	since := now.Truncate(time.Hour).Add(-time.Duration(days*24-1) * time.Hour)
	rows, err := g.server.cfg.Pool.Query(ctx, `SELECT date_trunc('hour', received_at), event_type, count(*)
		FROM ledger_events WHERE received_at >= $1 AND source = 'clerk' GROUP BY 1, 2`, since)
	if err != nil {
		return Deliveries{}, unavailable(err)
	}
	defer rows.Close()
	d := Deliveries{Days: days, Since: since, Totals: map[string]int{}}
	index := map[time.Time]int{}
	for i := 0; i < days*24; i++ {
		h := since.Add(time.Duration(i) * time.Hour)
		index[h] = i
		d.Hours = append(d.Hours, HourCounts{Hour: h, ByType: map[string]int{}})
	}
	type cell struct {
		hour time.Time
		typ  string
		n    int
	}
	var cells []cell
	for rows.Next() {
		var c cell
		if err := rows.Scan(&c.hour, &c.typ, &c.n); err != nil {
			return Deliveries{}, unavailable(err)
		}
		cells = append(cells, c)
		d.Totals[c.typ] += c.n
	}
	if err := rows.Err(); err != nil {
		return Deliveries{}, unavailable(err)
	}
	for t := range d.Totals {
		d.Types = append(d.Types, t)
	}
	sort.Slice(d.Types, func(i, j int) bool {
		a, b := d.Types[i], d.Types[j]
		return d.Totals[a] > d.Totals[b] || d.Totals[a] == d.Totals[b] && a < b
	})
	drawn := map[string]bool{}
	if len(d.Types) > chartTypes {
		d.Types = append(d.Types[:chartTypes-1:chartTypes-1], otherTypes)
	}
	for _, t := range d.Types {
		drawn[t] = true
	}
	for _, c := range cells {
		i, ok := index[c.hour.UTC()]
		if !ok {
			continue
		}
		t := c.typ
		if !drawn[t] {
			t = otherTypes
		}
		d.Hours[i].ByType[t] += c.n
	}
	if g.Rejected != nil {
		for h, n := range g.Rejected(since) {
			if i, ok := index[h]; ok {
				d.Hours[i].Rejected += n
				d.Rejected += n
			}
		}
	}
	return d, nil
}

// chartColours are told apart by people with the common colour-vision
// deficiencies (Okabe–Ito).
var chartColours = []string{"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00"}

// SVG draws d as stacked hourly bars with rejections as red ticks below the
// axis, server-side, with a title and description for screen readers.
func (d Deliveries) SVG() template.HTML {
	const (
		width, height  = 900, 300
		left, right    = 50, 10
		top, bottom    = 10, 90
		rejectedHeight = 30
	)
	plotW, plotH := float64(width-left-right), float64(height-top-bottom-rejectedHeight)
	peak, peakRejected := 1, 1
	for _, h := range d.Hours {
		sum := 0
		for _, n := range h.ByType {
			sum += n
		}
		peak, peakRejected = max(peak, sum), max(peakRejected, h.Rejected)
	}
	var b strings.Builder
	total := 0
	for _, n := range d.Totals {
		total += n
	}
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="100%%" role="img" aria-labelledby="chart-title chart-desc">`, width, height)
	fmt.Fprintf(&b, `<title id="chart-title">Deliveries per hour by event type, last %d days</title>`, d.Days)
	fmt.Fprintf(&b, `<desc id="chart-desc">%d deliveries appended and %d rejected since %s; the busiest hour had %d.</desc>`,
		total, d.Rejected, d.Since.Format("2006-01-02 15:04Z"), peak)
	barW := plotW / float64(max(1, len(d.Hours)))
	base := float64(top) + plotH
	for i, h := range d.Hours {
		x := float64(left) + float64(i)*barW
		y := base
		for ti, t := range d.Types {
			n := h.ByType[t]
			if n == 0 {
				continue
			}
			hgt := plotH * float64(n) / float64(peak)
			y -= hgt
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %d</title></rect>`,
				x, y, max(barW-0.5, 0.5), hgt, chartColours[ti%len(chartColours)], h.Hour.Format("01-02 15h"), template.HTMLEscapeString(t), n)
		}
		if h.Rejected > 0 {
			hgt := float64(rejectedHeight-4) * float64(h.Rejected) / float64(peakRejected)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#a40e26"><title>%s rejected: %d</title></rect>`,
				x, base+4, max(barW-0.5, 0.5), hgt, h.Hour.Format("01-02 15h"), h.Rejected)
		}
		if h.Hour.Hour() == 0 {
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%.1f" stroke="#8c959f" stroke-dasharray="2,2"/><text x="%.1f" y="%.1f" font-size="11" fill="#57606a">%s</text>`,
				x, x, top, base+rejectedHeight, x+2, base+rejectedHeight+12, h.Hour.Format("Jan 2"))
		}
	}
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#57606a"/>`, left, width-right, base, base)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" text-anchor="end" fill="#57606a">%d</text><text x="%d" y="%.1f" font-size="11" text-anchor="end" fill="#57606a">0</text>`, left-4, top+10, peak, left-4, base)
	fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="11" text-anchor="end" fill="#a40e26">rejected</text>`, left-4, base+18)
	for i, t := range d.Types {
		x := left + (i%3)*280
		y := height - 36 + (i/3)*16
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d" font-size="12" fill="#1b1f24">%s (%d)</text>`,
			x, y, chartColours[i%len(chartColours)], x+14, y+9, template.HTMLEscapeString(t), d.typeTotal(t))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func (d Deliveries) typeTotal(t string) int {
	if t != otherTypes {
		return d.Totals[t]
	}
	sum := 0
	for _, h := range d.Hours {
		sum += h.ByType[otherTypes]
	}
	return sum
}

func (g *Integrity) consoleRoutes(s *Server) {
	s.mux.HandleFunc("GET /integrity", s.console(false, func(w http.ResponseWriter, r *http.Request, sess *session) {
		g.integrityPage(w, r, sess, "")
	}))
	s.mux.HandleFunc("POST /integrity/verify", s.console(true, func(w http.ResponseWriter, r *http.Request, sess *session) {
		v, err := g.verify(r.Context(), "token:"+sess.Name)
		if err != nil {
			s.pageError(w, r, sess, err)
			return
		}
		notice := fmt.Sprintf("Verified %d entries against the checkpoint of tree size %d: OK.", v.Entries, v.TreeSize)
		if !v.OK {
			notice = fmt.Sprintf("Verification FAILED: %d problems (listed below).", len(v.Problems))
		}
		g.integrityPage(w, r, sess, notice)
	}))
	s.mux.HandleFunc("POST /projections/retry", s.console(true, func(w http.ResponseWriter, r *http.Request, sess *session) {
		offset, _ := strconv.ParseInt(r.PostForm.Get("offset"), 10, 64)
		results, err := g.retry(r.Context(), sess.Principal, r.PostForm.Get("projection"), offset, r.PostForm.Get("reason"))
		if err != nil {
			s.pageError(w, r, sess, err)
			return
		}
		g.integrityPage(w, r, sess, fmt.Sprintf("Retried %d failed entries; the retry is recorded in the ledger.", len(results)))
	}))
	s.mux.HandleFunc("GET /export", s.console(false, func(w http.ResponseWriter, r *http.Request, sess *session) {
		s.render(w, http.StatusOK, "export.html", page{Title: "Export", Session: sess})
	}))
	s.mux.HandleFunc("POST /export", s.console(true, func(w http.ResponseWriter, r *http.Request, sess *session) {
		req := ExportRequest{From: r.PostForm.Get("from"), To: r.PostForm.Get("to"), User: strings.TrimSpace(r.PostForm.Get("user"))}
		if err := g.export(w, r, sess.Principal, "console", req); err != nil {
			s.pageError(w, r, sess, err)
		}
	}))
}

func (g *Integrity) integrityPage(w http.ResponseWriter, r *http.Request, sess *session, notice string) {
	st, err := g.status(r.Context())
	if err != nil {
		g.server.pageError(w, r, sess, err)
		return
	}
	d, err := g.deliveries(r.Context(), "")
	if err != nil {
		g.server.pageError(w, r, sess, err)
		return
	}
	g.server.render(w, http.StatusOK, "integrity.html", page{Title: "Ledger integrity", Session: sess, Notice: notice,
		Data: map[string]any{"Status": st, "Chart": d.SVG(), "Deliveries": d}})
}
