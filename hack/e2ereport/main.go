// Command e2ereport reads the event stream of `go test -json` on stdin,
// prints each test's output as it arrives (what -v would print), and at the
// end a summary: the slowest tests with their durations and how many
// passed, skipped and failed. make e2e keeps the stream in a file and pipes
// it through this; it exits 0 whatever the tests did, so the make target's
// status stays go test's.
//
//	go test -json ./test/e2e | tee e2e.json | go run ./hack/e2ereport
//	go run ./hack/e2ereport -quiet -top 20 < e2e.json   # a kept run again
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

func main() {
	top := flag.Int("top", 10, "how many of the slowest tests to list")
	quiet := flag.Bool("quiet", false, "print the summary only, not the tests' output")
	flag.Parse()
	var live io.Writer = os.Stdout
	if *quiet {
		live = io.Discard
	}
	r, err := read(os.Stdin, live)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2ereport: reading the test events: %v (the summary below covers what was read)\n", err)
	}
	r.summary(os.Stdout, *top)
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Time    time.Time
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

// test is one test's outcome: Action is pass, fail or skip, or "" when the
// stream ended before the test did (a timeout or a panic ends the binary).
type test struct {
	Package, Name string
	Action        string
	// Elapsed is go test's figure: the time the test ran, not counting
	// its wait for a turn among the parallel tests, nor its parallel
	// subtests.
	Elapsed time.Duration
	// Span is from the test's start (or its resumption, when it waited for
	// a turn) to its end, its subtests included.
	Span time.Duration
	// start is when it started or resumed; paused, that it waits for a turn.
	start  time.Time
	paused bool
	// subtests, that it has any.
	subtests bool
}

// took is how long the test took: go test's figure, or its span when it
// has subtests (parallel subtests run after their parent's function has
// returned, so go test's figure leaves them out).
func (t *test) took() time.Duration {
	if t.subtests {
		return max(t.Elapsed, t.Span)
	}
	return t.Elapsed
}

// run is what a stream held.
type run struct {
	tests []*test
	// byName finds a test of tests by package and name.
	byName map[[2]string]*test
	// packages is each package's result and time, in the order they ended.
	packages []test
}

// read consumes the stream, copying its output (and any line that is not an
// event, such as a build error) to live.
func read(in io.Reader, live io.Writer) (*run, error) {
	r := &run{byName: map[[2]string]*test{}}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil || e.Action == "" {
			fmt.Fprintf(live, "%s\n", line)
			continue
		}
		switch e.Action {
		case "output", "build-output":
			fmt.Fprint(live, e.Output)
		case "run":
			t := r.get(e.Package, e.Test)
			t.start = e.Time
			// A subtest's own name may hold a slash (HTTP/1.1): only a
			// test that ran is a parent.
			if parent, _, ok := cutLast(e.Test, "/"); ok {
				if p, ok := r.byName[[2]string{e.Package, parent}]; ok {
					p.subtests = true
				}
			}
		case "pause":
			r.get(e.Package, e.Test).paused = true
		case "cont":
			// Also sent whenever the output turns back to a test; only the
			// first after a pause is its resumption.
			if t := r.get(e.Package, e.Test); t.paused {
				t.start, t.paused = e.Time, false
			}
		case "pass", "fail", "skip":
			d := time.Duration(e.Elapsed * float64(time.Second))
			if e.Test == "" {
				r.packages = append(r.packages, test{Package: e.Package, Action: e.Action, Elapsed: d})
				continue
			}
			t := r.get(e.Package, e.Test)
			t.Action, t.Elapsed = e.Action, d
			if !t.start.IsZero() && !e.Time.IsZero() {
				t.Span = e.Time.Sub(t.start)
			}
		}
	}
	return r, sc.Err()
}

func (r *run) get(pkg, name string) *test {
	k := [2]string{pkg, name}
	if t, ok := r.byName[k]; ok {
		return t
	}
	t := &test{Package: pkg, Name: name}
	r.byName[k], r.tests = t, append(r.tests, t)
	return t
}

// counts tallies the top-level tests (top) or the subtests by outcome.
func (r *run) counts(top bool) map[string]int {
	n := map[string]int{}
	for _, t := range r.tests {
		if !strings.Contains(t.Name, "/") == top {
			n[t.Action]++
		}
	}
	return n
}

// slowest is the n slowest top-level tests, slowest first.
func (r *run) slowest(n int) []*test {
	var tops []*test
	for _, t := range r.tests {
		if !strings.Contains(t.Name, "/") && t.Action != "" {
			tops = append(tops, t)
		}
	}
	slices.SortStableFunc(tops, func(a, b *test) int { return int(b.took() - a.took()) })
	return tops[:min(n, len(tops))]
}

func (r *run) summary(w io.Writer, top int) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, "=== summary")
	if len(r.tests) == 0 && len(r.packages) == 0 {
		fmt.Fprintln(w, "no test events were read: see the output above for why go test did not run")
		return
	}
	for _, p := range r.packages {
		fmt.Fprintf(w, "%s  %s in %s\n", p.Action, p.Package, p.Elapsed.Round(time.Second))
	}
	if s := r.slowest(top); len(s) > 0 {
		fmt.Fprintf(w, "the %d slowest tests (a parallel test from its turn on, its subtests included):\n", len(s))
		for _, t := range s {
			fmt.Fprintf(w, "  %8s  %-4s  %s\n", t.took().Round(100*time.Millisecond), t.Action, t.Name)
		}
	}
	c, sub := r.counts(true), r.counts(false)
	fmt.Fprintf(w, "tests: %d passed, %d skipped, %d failed", c["pass"], c["skip"], c["fail"])
	if c[""] > 0 {
		fmt.Fprintf(w, ", %d without a result (the run ended during them)", c[""])
	}
	fmt.Fprintf(w, "; subtests: %d passed, %d skipped, %d failed\n", sub["pass"], sub["skip"], sub["fail"])
	for _, t := range r.tests {
		if t.Action == "fail" || t.Action == "" {
			what := "FAIL"
			if t.Action == "" {
				what = "NO RESULT"
			}
			fmt.Fprintf(w, "  %s %s\n", what, t.Name)
		}
	}
}

// cutLast cuts s around the last sep.
func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}
