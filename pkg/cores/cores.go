// Package cores sets how many cores a process of kubectl-intercept runs Go
// code on at once (GOMAXPROCS): one while one is enough, more while the
// load needs them.
//
// A Go program runs with as many Ps as the machine has cores. At a
// sidecar's usual load, a fraction of one core, every P beyond the first
// costs CPU without serving more: a goroutine that a read wakes is handed
// to a thread on another core, and idle threads spin looking for work
// before they sleep. With one P the same requests cost less CPU each, and
// the tunnel's ends answer sooner (docs/performance.md, "One core while one
// is enough"). One P would also cap a busy sidecar at one core, and the
// sidecar carries all of its pod's traffic, so Adapt adds Ps when the
// process uses most of the ones it has and gives them back when the load
// has gone.
package cores

import (
	"context"
	"log/slog"
	"math"
	"os"
	"runtime"
	"time"
)

// policy decides the number of Ps from the cores the process used.
type policy struct {
	// Max is the most Ps: the runtime's own default, which is the cores
	// the process may use (its CPU affinity and cgroup limit).
	Max int
	// Up: with n Ps, more than Up×n cores used doubles n.
	Up float64
	// Down: with n Ps, less than Down×(n-1) cores used in Patience samples
	// in a row lowers n to what the use needs at Up.
	Down     float64
	Patience int
}

// defaultPolicy is Adapt's policy for a process that may use limit cores:
// the gap between raising at 80 % and lowering below 50 % of one P fewer
// keeps a steady load from switching back and forth.
func defaultPolicy(limit int) policy {
	return policy{Max: limit, Up: 0.8, Down: 0.5, Patience: 5}
}

// next returns the Ps to run with after a sample in which the process
// used `used` cores with n Ps, and low, the samples in a row below the
// lowering threshold so far, it returns updated.
func (p policy) next(n int, used float64, low int) (next, lowAfter int) {
	if n < 1 {
		n = 1
	}
	if used > p.Up*float64(n) && n < p.Max {
		return min(p.Max, 2*n), 0
	}
	if n == 1 || used >= p.Down*float64(n-1) {
		return n, 0
	}
	if low+1 < p.Patience {
		return n, low + 1
	}
	need := int(math.Ceil(used / p.Up))
	return max(1, min(n-1, need)), 0
}

// Adapt starts the process on one P and follows the load, sampling the
// process's CPU time every interval, until ctx ends. It does nothing when
// the process may use one core only or $GOMAXPROCS sets the number. log
// gets a debug line per change.
func Adapt(ctx context.Context, interval time.Duration, log *slog.Logger) {
	p := defaultPolicy(runtime.GOMAXPROCS(0))
	if p.Max <= 1 || os.Getenv("GOMAXPROCS") != "" {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	adapt(ctx, p, t.C, processCPU, runtime.GOMAXPROCS, log)
}

// adapt is Adapt with its clock, the process's CPU time and the runtime's
// setter passed in.
func adapt(ctx context.Context, p policy, tick <-chan time.Time, cpu func() (time.Duration, error), set func(int) int, log *slog.Logger) {
	before, err := cpu()
	if err != nil {
		log.Debug("cores: CPU time unreadable; keeping the runtime's default", "err", err)
		return
	}
	n, low := 1, 0
	set(n)
	last := time.Now()
	for {
		var now time.Time
		select {
		case <-ctx.Done():
			return
		case now = <-tick:
		}
		after, err := cpu()
		if err != nil {
			log.Debug("cores: CPU time unreadable; running on every core", "err", err)
			set(p.Max)
			return
		}
		wall := now.Sub(last)
		if wall <= 0 {
			continue
		}
		used := float64(after-before) / float64(wall)
		before, last = after, now
		next, l := p.next(n, used, low)
		low = l
		if next != n {
			log.Debug("cores: Go code runs on a new number of cores", "from", n, "to", next, "used", used)
			set(next)
			n = next
		}
	}
}
