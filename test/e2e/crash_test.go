//go:build e2e

package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The process dies right after each mutating API call of the start sequence
// (copy created; Service switched) and of the close sequence (Service
// restored; copy deleted). From each state, `close` restores the Service
// exactly and removes everything we made, and a new intercept of the same
// Service works. Each state has a namespace of its own, so the states are
// tried side by side.
func TestCrashAtEveryStep(t *testing.T) {
	t.Parallel()
	steps := []string{"after creating the copy", "after switching the Service", "after restoring the Service", "after deleting the copy"}
	var recovered atomic.Int32
	states := 0
	for i, step := range steps {
		for _, recovery := range []string{"close", "a new intercept"} {
			states++
			t.Run(step+", then "+recovery, func(t *testing.T) {
				t.Parallel()
				ns := newNamespace(t)
				svc := deployDemo(t, ns, demoOptions{})
				before := takeSnapshot(t, ns, "demo")
				port := laptop(t, laptopPod)

				p := startPluginEnv(t, []string{fmt.Sprintf("KUBECTL_INTERCEPT_FAULT_AFTER=%d", i+1)}, "svc/demo", "-n", ns, "-l", strconv.Itoa(port))
				if i >= 2 {
					// The close steps: let the intercept become active, then end it.
					p.waitOutput(t, "Intercepting service", 2*time.Minute)
					p.cmd.Process.Signal(syscall.SIGINT)
				}
				p.cmd.Wait()
				if !strings.Contains(p.output(), "fault injected") {
					t.Fatalf("no fault was injected:\n%s", p.output())
				}
				if recovery == "close" {
					if out, err := runPlugin(t, "close", "svc/demo", "-n", ns); err != nil {
						t.Fatalf("close after the crash: %v\n%s", err, out)
					}
					assertRestored(t, ns, "demo", before)
				}

				// Not stuck: a new intercept resumes or cleans up, routes, closes.
				q := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(port))
				q.waitOutput(t, "Intercepting service", 2*time.Minute)
				inPart(t, "the header through the ClusterIP", func(t *testing.T) {
					if got := routedTo(t, svc, header("X-C6O-INTERCEPT", "yes")); got != laptopPod {
						t.Fatalf("the next intercept routed the header to %q", got)
					}
				})
				q.cmd.Process.Signal(syscall.SIGINT)
				if err := q.cmd.Wait(); err != nil {
					t.Fatalf("the next intercept: %v\n%s", err, q.output())
				}
				assertRestored(t, ns, "demo", before)
				if !t.Failed() {
					recovered.Add(1)
				}
			})
		}
	}
	// Cleanup runs once the parallel subtests have ended.
	t.Cleanup(func() { t.Logf("crash states recovered: %d of %d", recovered.Load(), states) })
}
