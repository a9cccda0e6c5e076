//go:build e2e

package e2e

import (
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
)

// BenchmarkDecoyTimeToActive measures the time from starting the plugin to
// "Intercepting service" for the copy and for --decoy, on an app that
// becomes Ready 20 s after it starts (readinessProbe initialDelaySeconds
// 20), three runs of each, alternating, each closed before the next. It
// reports and logs the median and the range; it asserts nothing about
// speed. Run it alone (docs/performance.md):
//
//	go test -tags e2e -run '^$' -bench BenchmarkDecoyTimeToActive -benchtime 1x ./test/e2e
func BenchmarkDecoyTimeToActive(b *testing.B) {
	for range b.N {
		benchDecoy(b)
	}
}

func benchDecoy(b *testing.B) {
	// The e2e helpers take a *testing.T: the measurement runs as a test of
	// its own (testing.RunTests), whose figures the benchmark reports.
	var copyRuns, decoyRuns []time.Duration
	ok := testing.RunTests(func(pat, str string) (bool, error) { return true, nil }, []testing.InternalTest{{
		Name: "TimeToActive",
		F: func(t *testing.T) {
			ns := newNamespace(t)
			deployDemo(t, ns, demoOptions{deploymentMutate: func(d *appsv1.Deployment) {
				d.Spec.Template.Spec.Containers[0].ReadinessProbe.InitialDelaySeconds = 20
			}})
			port := laptop(t, laptopPod)
			before := takeDecoyState(t, ns, "demo", "demo")
			run := func(args ...string) time.Duration {
				start := time.Now()
				p := startPlugin(t, append([]string{"svc/demo", "-n", ns, "-l", strconv.Itoa(port)}, args...)...)
				p.waitOutput(t, "Intercepting service", 3*time.Minute)
				took := time.Since(start)
				p.cmd.Process.Signal(syscall.SIGINT)
				if err := p.cmd.Wait(); err != nil {
					t.Fatalf("the intercept ended with %v:\n%s", err, p.output())
				}
				assertNothingLeft(t, ns, "demo", "demo", before)
				return took
			}
			for range 3 {
				copyRuns = append(copyRuns, run())
				decoyRuns = append(decoyRuns, run("--decoy"))
			}
		},
	}})
	if !ok {
		b.Fatal("the measurement failed")
	}
	for _, m := range []struct {
		name string
		runs []time.Duration
	}{{"copy", copyRuns}, {"decoy", decoyRuns}} {
		slices.Sort(m.runs)
		med := m.runs[len(m.runs)/2]
		b.Logf("time to active, %s: median %.1f s, range %.1f-%.1f s (runs %v)", m.name, med.Seconds(),
			m.runs[0].Seconds(), m.runs[len(m.runs)-1].Seconds(), m.runs)
		b.ReportMetric(med.Seconds(), m.name+"-median-s")
	}
}
