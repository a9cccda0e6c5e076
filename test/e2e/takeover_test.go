//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// keptAlive is a caller with one kept-alive connection to the Service (as a
// frontend's pool or a gRPC channel), sending the developer's header every
// 200 ms; it records who answered each request.
type keptAlive struct {
	mu      sync.Mutex
	answers []answer
	stop    context.CancelFunc
	done    chan struct{}
}

type answer struct {
	at  time.Time
	pod string
}

func keepCalling(t *testing.T, url string, h http.Header) *keptAlive {
	tr := clusterTransport(&http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1, IdleConnTimeout: time.Minute})
	c := &http.Client{Transport: tr, Timeout: 3 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	k := &keptAlive{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(k.done)
		defer tr.CloseIdleConnections()
		for i := 0; i < 3000 && ctx.Err() == nil; i++ { // 10 minutes at most
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			for name, v := range h {
				req.Header[name] = v
			}
			var e echo
			if resp, err := c.Do(req); err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				_ = json.Unmarshal(body, &e)
			}
			k.mu.Lock()
			k.answers = append(k.answers, answer{time.Now(), e.Pod})
			k.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-k.done })
	return k
}

// since returns who answered after t.
func (k *keptAlive) since(t time.Time) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for _, a := range k.answers {
		if a.at.After(t) {
			out = append(out, a.pod)
		}
	}
	return out
}

// A caller whose kept-alive connection was opened before the intercept
// stays on the original's pod (and the plugin says so); with --take-over
// its requests reach the laptop within 10 s of active, and close gives
// the original its replicas back.
func TestTakeOverMovesKeptAliveCallers(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{})
	port := laptop(t, laptopPod)
	before := takeSnapshot(t, ns, "demo")
	run := laptopCLI(t) // one state directory: close ends the background intercept
	inPart(t, "a kept-alive caller through the ClusterIP", func(t *testing.T) {
		caller := keepCalling(t, serviceURL(svc), header("X-Dev", "alice"))
		waitFor(t, 30*time.Second, "the caller's first answers", func() bool { return len(caller.since(time.Time{})) >= 3 })

		// Without --take-over: the connection stays on the original, and
		// the plugin says what happens and what to do.
		out := run("demo", "-n", ns, "-l", strconv.Itoa(port), "-x", "x-dev:alice", "--detach")
		for _, want := range []string{"kept-alive", "--take-over"} {
			if !strings.Contains(out, want) {
				t.Fatalf("the intercept's output does not say %q:\n%s", want, out)
			}
		}
		active := time.Now()
		waitFor(t, 30*time.Second, "5 s of answers after active", func() bool { return len(caller.since(active.Add(5*time.Second))) > 0 })
		for _, pod := range caller.since(active) {
			if pod == laptopPod {
				t.Fatal("without --take-over a connection opened before the switch reached the laptop: the test does not show the problem")
			}
		}
		t.Logf("without --take-over, %d of the kept-alive caller's requests in 5 s after active reached the original, none the laptop", len(caller.since(active)))
		run("close", "svc/demo", "-n", ns)

		// With --take-over: the laptop within 10 s of active.
		out = run("demo", "-n", ns, "-l", strconv.Itoa(port), "-x", "x-dev:alice", "--take-over", "--detach")
		active = time.Now()
		if !strings.Contains(out, "scaling deployment/demo to zero") {
			t.Fatalf("the take-over is not shown:\n%s", out)
		}
		waitFor(t, 10*time.Second, "the kept-alive caller on the laptop", func() bool {
			got := caller.since(active)
			return len(got) > 0 && got[len(got)-1] == laptopPod
		})
		t.Logf("with --take-over, the kept-alive caller's requests reached the laptop %s after active", time.Since(active).Round(100*time.Millisecond))
		d, err := cs.AppsV1().Deployments(ns).Get(t.Context(), "demo", metav1.GetOptions{})
		if err != nil || ptr.Deref(d.Spec.Replicas, 1) != 0 {
			t.Fatalf("the original during the take-over: %v replicas, %v; want 0", d.Spec.Replicas, err)
		}
		run("close", "svc/demo", "-n", ns)
	})
	d, err := cs.AppsV1().Deployments(ns).Get(t.Context(), "demo", metav1.GetOptions{})
	if err != nil || ptr.Deref(d.Spec.Replicas, 1) != 2 || d.Status.ReadyReplicas != 2 {
		t.Fatalf("the original after close: %v replicas (%d ready), %v; want 2 back", d.Spec.Replicas, d.Status.ReadyReplicas, err)
	}
	// The original's generation moved with its scale, down and back; the
	// rest is as it was.
	before.DeployRV = strconv.FormatInt(d.Generation, 10)
	assertRestored(t, ns, "demo", before)
}
