//go:build e2e

package e2e

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// copyPodsReady counts the copy's pods that are Ready and the copy's pods
// that exist at all.
func copyPodsReady(t *testing.T, ns string) (ready, total int) {
	t.Helper()
	pods, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "intercept.kubectl.dev/session"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		total++
		if podReady(&p) && p.DeletionTimestamp == nil {
			ready++
		}
	}
	return ready, total
}

// The copy scales with the original: scaled from 2 to 4 during an
// intercept, the copy reaches 4 and every new pod holds the route before it
// takes traffic (40 of 40 header requests reach the laptop); scaled back
// to 1, no request fails while the copy's pods drain.
func TestCopyScalesWithTheOriginal(t *testing.T) {
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{replicas: 2})
	port := laptop(t, laptopPod)
	p := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(port))
	p.waitOutput(t, "Intercepting service", 2*time.Minute)
	waitFor(t, 30*time.Second, "tunnels to 2 pods", func() bool { return strings.Count(p.output(), "route up:") >= 2 })

	start := time.Now()
	scale(t, ns, "demo", 4)
	var followed time.Duration
	waitFor(t, 30*time.Second, "the copy to want 4 replicas", func() bool {
		d := theCopy(t, ns)
		if ptr.Deref(d.Spec.Replicas, 0) == 4 {
			followed = time.Since(start)
			return true
		}
		return false
	})
	waitFor(t, 2*time.Minute, "4 ready copy pods", func() bool { ready, _ := copyPodsReady(t, ns); return ready == 4 })
	t.Logf("scaled the original 2 -> 4: the copy wanted 4 after %s; all 4 copy pods ready (each holding the route) after %s",
		followed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if n := strings.Count(p.output(), "route up:"); n < 4 {
		t.Errorf("%d tunnels up, want one to each of 4 pods:\n%s", n, p.output())
	}
	for i := range 40 {
		if got := routedTo(t, svc, header("X-C6O-INTERCEPT", "yes")); got != laptopPod {
			t.Fatalf("after the scale-up, header request %d of 40 reached %q", i+1, got)
		}
	}

	// Scale down under a client loop: none of its requests may fail.
	ctx, stop := context.WithTimeout(context.Background(), 3*time.Minute)
	defer stop()
	var sent, failed atomic.Int64
	var firstFailure atomic.Value
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil && i < 5000; i++ {
				h, want := header("X-C6O-INTERCEPT", "yes"), laptopPod
				if (i+w)%2 == 0 {
					h, want = nil, ""
				}
				e, code, err := get(serviceURL(svc), h)
				sent.Add(1)
				if err != nil || code != 200 || (want != "" && e.Pod != want) || (want == "" && e.Pod == laptopPod) {
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, strings.TrimSpace(e.Pod+" "+strconv.Itoa(code)+" "+errString(err)))
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	time.Sleep(time.Second)
	scale(t, ns, "demo", 1)
	waitFor(t, 2*time.Minute, "the copy down to 1 pod", func() bool {
		ready, total := copyPodsReady(t, ns)
		return ready == 1 && total == 1
	})
	time.Sleep(2 * time.Second)
	stop()
	wg.Wait()
	t.Logf("scale-down 4 -> 1: %d requests, %d failed", sent.Load(), failed.Load())
	if failed.Load() > 0 {
		t.Errorf("%d of %d requests failed during the scale-down (first: %v)", failed.Load(), sent.Load(), firstFailure.Load())
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	p.cmd.Wait()
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
