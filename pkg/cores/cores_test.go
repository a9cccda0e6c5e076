package cores

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"
)

func TestNext(t *testing.T) {
	p := defaultPolicy(8)
	for _, tc := range []struct {
		name           string
		n              int
		used           float64
		low            int
		next, lowAfter int
	}{
		{"idle on one P stays", 1, 0.02, 0, 1, 0},
		{"most of one P stays", 1, 0.79, 0, 1, 0},
		{"a busy P doubles", 1, 0.95, 0, 2, 0},
		{"busy two double", 2, 1.7, 0, 4, 0},
		{"never past the cores the process may use", 4, 3.9, 0, 8, 0},
		{"busy at the most stays", 8, 7.9, 0, 8, 0},
		{"between the thresholds stays and forgets low samples", 2, 0.6, 3, 2, 0},
		{"a quiet sample counts", 2, 0.3, 0, 2, 1},
		{"quiet long enough lowers", 2, 0.3, 4, 1, 0},
		{"lowers to what the use needs", 8, 1.5, 4, 2, 0},
		{"lowers one at least", 8, 3.4, 4, 5, 0},
		{"a spike after quiet samples raises at once", 2, 1.9, 4, 4, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next, low := p.next(tc.n, tc.used, tc.low)
			if next != tc.next || low != tc.lowAfter {
				t.Errorf("next(%d, %.2f, %d) = %d, %d; want %d, %d", tc.n, tc.used, tc.low, next, low, tc.next, tc.lowAfter)
			}
		})
	}
}

func TestNextOneCore(t *testing.T) {
	if next, _ := defaultPolicy(1).next(1, 1.0, 0); next != 1 {
		t.Errorf("a process that may use one core got %d Ps", next)
	}
}

// TestAdaptFollowsLoad runs the loop on a made-up clock: one P at the
// start, two once the process is busy, one again after five quiet seconds.
func TestAdaptFollowsLoad(t *testing.T) {
	tick := make(chan time.Time)
	cpu := make(chan time.Duration)
	sets := make(chan int, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		adapt(ctx, defaultPolicy(4), tick, func() (time.Duration, error) { return <-cpu, nil },
			func(n int) int { sets <- n; return 0 }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	var used time.Duration
	cpu <- used
	if n := <-sets; n != 1 {
		t.Fatalf("started on %d Ps, want 1", n)
	}
	now := time.Now()
	// second hands the loop a tick a second on and the CPU time it then
	// reads; each send waits for the loop, so the previous second's change,
	// if any, is in sets by the time the next tick is taken.
	second := func(cores float64) {
		now = now.Add(time.Second)
		tick <- now
		used += time.Duration(cores * float64(time.Second))
		cpu <- used
	}
	second(0.3)
	second(0.95)
	if n := <-sets; n != 2 {
		t.Fatalf("busy on one P: set %d, want 2", n)
	}
	for range 4 {
		second(0.2)
	}
	now = now.Add(time.Second)
	tick <- now
	select {
	case n := <-sets:
		t.Fatalf("set %d Ps after four quiet seconds, want five", n)
	default:
	}
	used += time.Second / 5
	cpu <- used
	if n := <-sets; n != 1 {
		t.Fatalf("quiet on two Ps: set %d, want 1", n)
	}
	cancel()
	<-done
}
