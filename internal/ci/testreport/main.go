// Command testreport reads `go test -json` output (test2json events) on
// standard input and prints what a person needs from a CI run: the output
// of every failed test, every skipped test with its reason, and one closing
// line "N passed, N failed, N skipped". It exits 1 when a test or package
// failed, when no test ran, or when a test was skipped for a reason that
// names a missing file or fixture: a test that cannot find its input must
// fail, never skip (the repository stands alone; see .ci/run).
//
//	go test -json ./... | go run ./internal/ci/testreport
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

// event is one test2json record (cmd/test2json documents the format).
type event struct {
	Action  string `json:"Action"`
	Package string `json:"Package"`
	Test    string `json:"Test"`
	Output  string `json:"Output"`
}

// missingInput matches skip reasons that mean "my input file is not
// here", which a self-contained repository must never give.
var missingInput = regexp.MustCompile(`(?i)no such file|does not exist|not exist|cannot find|can't find|missing (file|fixture)|fixture|\.\./shared`)

// report is what was read from the events.
type report struct {
	passed, failed, skipped int
	failures                []string // "pkg Test" with its output
	skips                   []string // "pkg Test: reason"
	forbiddenSkips          []string
	pkgFailures             []string
}

func main() {
	r, err := read(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	os.Exit(r.print(os.Stdout))
}

// read consumes the events. Lines that are not JSON (build errors, a
// package's own prints) are copied to echo so nothing is hidden, and so is
// each package's result as it finishes, to show progress.
func read(in io.Reader, echo io.Writer) (*report, error) {
	r := &report{}
	output := map[string]*strings.Builder{} // "pkg\x00Test" → its output
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			fmt.Fprintf(echo, "%s\n", line)
			continue
		}
		key := e.Package + "\x00" + e.Test
		switch e.Action {
		case "output":
			b := output[key]
			if b == nil {
				b = &strings.Builder{}
				output[key] = b
			}
			b.WriteString(e.Output)
		case "pass":
			if e.Test != "" {
				r.passed++
			} else {
				fmt.Fprintf(echo, "ok  \t%s\n", e.Package)
			}
			delete(output, key)
		case "fail":
			if e.Test == "" {
				fmt.Fprintf(echo, "FAIL\t%s\n", e.Package)
				r.pkgFailures = append(r.pkgFailures, e.Package+"\n"+text(output[key]))
			} else {
				r.failed++
				r.failures = append(r.failures, e.Package+" "+e.Test+"\n"+text(output[key]))
			}
			delete(output, key)
		case "skip":
			if e.Test == "" { // a package without tests
				delete(output, key)
				continue
			}
			r.skipped++
			reason := skipReason(text(output[key]))
			s := fmt.Sprintf("%s %s: %s", e.Package, e.Test, reason)
			r.skips = append(r.skips, s)
			if missingInput.MatchString(reason) {
				r.forbiddenSkips = append(r.forbiddenSkips, s)
			}
			delete(output, key)
		}
	}
	return r, sc.Err()
}

func text(b *strings.Builder) string {
	if b == nil {
		return ""
	}
	return b.String()
}

// skipReason keeps the lines a t.Skip printed, without the "=== RUN" and
// "--- SKIP" framing.
func skipReason(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		keep = append(keep, t)
	}
	if len(keep) == 0 {
		return "(no reason given)"
	}
	return strings.Join(keep, " ")
}

// print writes the report and returns the exit status.
func (r *report) print(w io.Writer) int {
	status := 0
	for _, f := range r.failures {
		fmt.Fprintf(w, "\n--- failed: %s", f)
	}
	for _, f := range r.pkgFailures {
		fmt.Fprintf(w, "\n--- package failed: %s", f)
	}
	if len(r.failures)+len(r.pkgFailures) > 0 {
		status = 1
	}
	sort.Strings(r.skips)
	if len(r.skips) > 0 {
		fmt.Fprintf(w, "\nskipped tests:\n")
		for _, s := range r.skips {
			fmt.Fprintf(w, "  %s\n", s)
		}
	}
	if len(r.forbiddenSkips) > 0 {
		fmt.Fprintf(w, "\n%d test(s) skipped for a missing file or fixture; a test must find its input inside the repository or fail:\n", len(r.forbiddenSkips))
		for _, s := range r.forbiddenSkips {
			fmt.Fprintf(w, "  %s\n", s)
		}
		status = 1
	}
	if r.passed+r.failed == 0 {
		fmt.Fprintln(w, "no test ran")
		status = 1
	}
	fmt.Fprintf(w, "\n%d passed, %d failed, %d skipped\n", r.passed, r.failed, r.skipped)
	return status
}
