package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

// A stream as go test -json writes it for one package: parallel tests
// interleaved, a subtest, a skip, a failure, a line that is not an event
// (TestMain's own stderr before the binary's first event, a build error),
// and a test the run ended during (a timeout).
const stream = `{"Action":"start","Package":"e2e"}
e2e: the local cluster
{"Action":"run","Package":"e2e","Test":"TestA"}
{"Action":"output","Package":"e2e","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"run","Package":"e2e","Test":"TestB"}
{"Action":"run","Package":"e2e","Test":"TestB/sub"}
{"Action":"pass","Package":"e2e","Test":"TestB/sub","Elapsed":900}
{"Action":"pass","Package":"e2e","Test":"TestB","Elapsed":12.34}
{"Action":"run","Package":"e2e","Test":"TestC"}
{"Action":"skip","Package":"e2e","Test":"TestC","Elapsed":0}
{"Action":"run","Package":"e2e","Test":"TestD"}
{"Action":"output","Package":"e2e","Test":"TestD","Output":"--- FAIL: TestD (3.00s)\n"}
{"Action":"fail","Package":"e2e","Test":"TestD","Elapsed":3}
{"Action":"pass","Package":"e2e","Test":"TestA","Elapsed":100.5}
{"Action":"run","Package":"e2e","Test":"TestE"}
{"Action":"fail","Package":"e2e","Elapsed":130}
`

// A parallel test whose parallel subtests run after its function returned:
// go test gives the parent 0.1 s; it took from its turn to its end, 50 s
// (the output's own CONT lines do not restart it). A subtest's name holds
// a slash.
const parallelStream = `{"Time":"2026-01-01T10:00:00Z","Action":"run","Package":"e2e","Test":"TestKinds"}
{"Time":"2026-01-01T10:00:00Z","Action":"pause","Package":"e2e","Test":"TestKinds"}
{"Time":"2026-01-01T10:00:00Z","Action":"run","Package":"e2e","Test":"TestSerial"}
{"Time":"2026-01-01T10:00:30Z","Action":"pass","Package":"e2e","Test":"TestSerial","Elapsed":30}
{"Time":"2026-01-01T10:00:30Z","Action":"cont","Package":"e2e","Test":"TestKinds"}
{"Time":"2026-01-01T10:00:30Z","Action":"run","Package":"e2e","Test":"TestKinds/A"}
{"Time":"2026-01-01T10:00:30Z","Action":"pause","Package":"e2e","Test":"TestKinds/A"}
{"Time":"2026-01-01T10:00:30Z","Action":"cont","Package":"e2e","Test":"TestKinds/A"}
{"Time":"2026-01-01T10:00:40Z","Action":"cont","Package":"e2e","Test":"TestKinds"}
{"Time":"2026-01-01T10:00:31Z","Action":"run","Package":"e2e","Test":"TestKinds/HTTP/1.1"}
{"Time":"2026-01-01T10:00:32Z","Action":"pass","Package":"e2e","Test":"TestKinds/HTTP/1.1","Elapsed":1}
{"Time":"2026-01-01T10:01:10Z","Action":"pass","Package":"e2e","Test":"TestKinds/A","Elapsed":40}
{"Time":"2026-01-01T10:01:20Z","Action":"pass","Package":"e2e","Test":"TestKinds","Elapsed":0.1}
`

func TestParallelSubtestsCountForTheirParent(t *testing.T) {
	r, err := read(strings.NewReader(parallelStream), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s := r.slowest(2)
	if len(s) != 2 || s[0].Name != "TestKinds" || s[0].took() != 50*time.Second || s[1].took() != 30*time.Second {
		for _, x := range s {
			t.Logf("%s %s", x.Name, x.took())
		}
		t.Fatal("want TestKinds at 50s, then TestSerial at 30s")
	}
	// A subtest named with a slash is not taken for a parent that never ended.
	if n := r.counts(false); n["pass"] != 2 || n[""] != 0 {
		t.Errorf("subtests by outcome: %v, want 2 passed", n)
	}
}

func TestSummaryOfAStream(t *testing.T) {
	var live strings.Builder
	r, err := read(strings.NewReader(stream), &live)
	if err != nil {
		t.Fatal(err)
	}
	if want := "e2e: the local cluster\n=== RUN   TestA\n--- FAIL: TestD (3.00s)\n"; live.String() != want {
		t.Errorf("live output %q, want %q", live.String(), want)
	}
	var names []string
	for _, s := range r.slowest(3) {
		names = append(names, s.Name)
	}
	// The subtest's 900 s is its parent's, not a test of its own.
	if got := strings.Join(names, ","); got != "TestA,TestB,TestD" {
		t.Errorf("the 3 slowest: %s, want TestA,TestB,TestD", got)
	}
	if n := len(r.slowest(10)); n != 4 {
		t.Errorf("%d tests listed as the slowest of 10, want the 4 that ended", n)
	}
	var sum strings.Builder
	r.summary(&sum, 10)
	for _, want := range []string{
		"fail  e2e in 2m10s",
		"  1m40.5s  pass  TestA\n",
		"    12.3s  pass  TestB\n",
		"tests: 2 passed, 1 skipped, 1 failed, 1 without a result (the run ended during them); subtests: 1 passed, 0 skipped, 0 failed",
		"  FAIL TestD\n",
		"  NO RESULT TestE\n",
	} {
		if !strings.Contains(sum.String(), want) {
			t.Errorf("the summary lacks %q:\n%s", want, sum.String())
		}
	}
}

// go test that never ran a test (a build failure) gets a summary that says
// so instead of an empty table.
func TestSummaryOfNothing(t *testing.T) {
	var live, sum strings.Builder
	r, err := read(strings.NewReader("# e2e\ntest/e2e/x.go:1: syntax error\n"), &live)
	if err != nil {
		t.Fatal(err)
	}
	r.summary(&sum, 10)
	if !strings.Contains(live.String(), "syntax error") || !strings.Contains(sum.String(), "no test events were read") {
		t.Errorf("live %q, summary %q", live.String(), sum.String())
	}
}
