//go:build e2e

package e2e

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The process dies right after each mutating API call of the start sequence
// (copy created; Service switched) and of the close sequence (Service
// restored; copy deleted). From each state, `close` restores the Service
// exactly and removes everything we made, and a new intercept of the same
// Service works.
func TestCrashAtEveryStep(t *testing.T) {
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{})
	before := takeSnapshot(t, ns, "demo")
	port := laptop(t, laptopPod)
	steps := []string{"after creating the copy", "after switching the Service", "after restoring the Service", "after deleting the copy"}
	crash := func(t *testing.T, step int) {
		t.Helper()
		p := startPluginEnv(t, []string{fmt.Sprintf("KUBECTL_INTERCEPT_FAULT_AFTER=%d", step+1)}, "svc/demo", "-n", ns, "-l", strconv.Itoa(port))
		if step >= 2 {
			// The close steps: let the intercept become active, then end it.
			p.waitOutput(t, "Intercepting service", 2*time.Minute)
			p.cmd.Process.Signal(syscall.SIGINT)
		}
		p.cmd.Wait()
		if !strings.Contains(p.output(), "fault injected") {
			t.Fatalf("no fault was injected:\n%s", p.output())
		}
	}
	intercept := func(t *testing.T) {
		t.Helper()
		q := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(port))
		q.waitOutput(t, "Intercepting service", 2*time.Minute)
		fromHost(t, "the header through the ClusterIP", func(t *testing.T) {
			if got := routedTo(t, svc, header("X-C6O-INTERCEPT", "yes")); got != laptopPod {
				t.Fatalf("the next intercept routed the header to %q", got)
			}
		})
		q.cmd.Process.Signal(syscall.SIGINT)
		if err := q.cmd.Wait(); err != nil {
			t.Fatalf("the next intercept: %v\n%s", err, q.output())
		}
		assertRestored(t, ns, "demo", before)
	}
	recovered, states := 0, 0
	for i, step := range steps {
		for _, recovery := range []string{"close", "a new intercept"} {
			states++
			ok := t.Run(step+", then "+recovery, func(t *testing.T) {
				crash(t, i)
				if recovery == "close" {
					if out, err := runPlugin(t, "close", "svc/demo", "-n", ns); err != nil {
						t.Fatalf("close after the crash: %v\n%s", err, out)
					}
					assertRestored(t, ns, "demo", before)
				}
				// Not stuck: a new intercept resumes or cleans up, routes, closes.
				intercept(t)
			})
			if ok {
				recovered++
			}
		}
	}
	t.Logf("crash states recovered: %d of %d", recovered, states)
	if after := takeSnapshot(t, ns, "demo"); !reflect.DeepEqual(before, after) {
		t.Fatal("the namespace is not as it was")
	}
}
