//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Routes narrowed by path and method (--path-prefix, --path-regex,
// --method): with a marker, a request must carry it and match; with -a,
// every HTTP request that matches is the developer's; two developers may
// share a marker on paths no request takes both of.

// answeredBy sends method path through the Service (from the client pod,
// on a new connection) with h, and returns the pod (or laptop) that
// answered.
func answeredBy(t *testing.T, svc *corev1.Service, method, path string, h http.Header) string {
	t.Helper()
	url := strings.TrimSuffix(serviceURL(svc), "/") + path
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: clusterTransport(&http.Transport{DisableKeepAlives: true})}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s through service %s: %v", method, path, svc.Name, err)
	}
	defer resp.Body.Close()
	e, err := decodeEcho(resp)
	if err != nil {
		t.Fatalf("%s %s through service %s: %v", method, path, svc.Name, err)
	}
	return e.Pod
}

// decodeEcho reads the demo's (or a laptop's) answer.
func decodeEcho(resp *http.Response) (echo, error) {
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return echo{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return echo{}, fmt.Errorf("status %d, body %q", resp.StatusCode, body)
	}
	var e echo
	if err := json.Unmarshal(body, &e); err != nil {
		return echo{}, fmt.Errorf("body %q: %w", body, err)
	}
	return e, nil
}

// request is one request of a routing table test and who must answer it:
// a laptop by name, or "" for the app in the cluster.
type request struct {
	method, path string
	h            http.Header
	want         string
}

// checkRouted sends each request twice (both copy pods get some) and
// fails on the first that reaches the wrong side.
func checkRouted(t *testing.T, svc *corev1.Service, reqs []request) {
	t.Helper()
	for range 2 {
		for _, r := range reqs {
			got := answeredBy(t, svc, r.method, r.path, r.h)
			switch {
			case r.want == "" && !strings.HasPrefix(got, "demo-"):
				t.Fatalf("%s %s %v reached %q, want the app in the cluster", r.method, r.path, r.h, got)
			case r.want != "" && got != r.want:
				t.Fatalf("%s %s %v reached %q, want %s", r.method, r.path, r.h, got, r.want)
			}
		}
	}
}

// With a header: alice takes her requests under /api with GET or POST,
// bob his on /users/<digits> (a regex over the whole path); the rest of
// their requests, and everyone else's, stay in the cluster. An HTTP/2
// stream is routed by its own path.
func TestRouteNarrowedWithHeader(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{})
	before := takeSnapshot(t, ns, "demo")
	alice, bob := laptop(t, "alice"), laptop(t, "bob")

	a := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(alice), "-x", "x-dev:alice", "--path-prefix", "/api", "--method", "get", "--method", "POST", "-w")
	a.waitOutput(t, "Intercepting service", 2*time.Minute)
	for _, want := range []string{"requests with header x-dev:alice, path starting with /api, method GET or POST, go to localhost:",
		"curl -H 'x-dev: alice' http://demo." + ns + ":80/api"} {
		if !strings.Contains(a.output(), want) {
			t.Errorf("alice's active message lacks %q:\n%s", want, a.output())
		}
	}
	b := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(bob), "-x", "x-dev:bob", "--path-regex", "/users/[0-9]+", "-w")
	b.waitOutput(t, "Intercepting service", 2*time.Minute)

	ha, hb := header("x-dev", "alice"), header("x-dev", "bob")
	checkRouted(t, svc, []request{
		{"GET", "/api", ha, "alice"},
		{"POST", "/api/v1/orders?x=1", ha, "alice"},
		{"DELETE", "/api/v1/orders", ha, ""}, // another method
		{"GET", "/apiary", ha, "alice"},      // a prefix of the path as sent, not of a segment
		{"GET", "/v1/api", ha, ""},
		{"GET", "/api/v1", nil, ""}, // no header
		{"GET", "/api/v1", hb, ""},  // bob's header, not his path
		{"GET", "/users/42", hb, "bob"},
		{"DELETE", "/users/42", hb, "bob"},
		{"GET", "/users/42/orders", hb, ""}, // the regex matches the whole path
		{"GET", "/users/alice", hb, ""},
		{"GET", "/users/42", ha, ""},
	})

	// An HTTP/2 stream is matched on its own path and method.
	c := h2cClient(t)
	for _, tc := range []struct{ path, want string }{{"/api/h2", "alice"}, {"/other", ""}} {
		req, _ := http.NewRequest(http.MethodGet, strings.TrimSuffix(serviceURL(svc), "/")+tc.path, nil)
		req.Header = header("x-dev", "alice")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("HTTP/2 GET %s: %v", tc.path, err)
		}
		e, err := decodeEcho(resp)
		resp.Body.Close()
		if err != nil || resp.ProtoMajor != 2 {
			t.Fatalf("HTTP/2 GET %s: %s, %v", tc.path, resp.Proto, err)
		}
		if (tc.want == "" && !strings.HasPrefix(e.Pod, "demo-")) || (tc.want != "" && e.Pod != tc.want) {
			t.Fatalf("HTTP/2 GET %s with alice's header reached %q, want %q (empty: the app)", tc.path, e.Pod, tc.want)
		}
	}

	// list shows each route with what narrows it.
	out, err := runPlugin(t, "list", "-n", ns)
	if err != nil || !strings.Contains(out, "path /api* GET,POST by ") || !strings.Contains(out, "path ~/users/[0-9]+ by ") {
		t.Errorf("list (err %v) does not show the narrowed routes:\n%s", err, out)
	}
	a.interrupt(t)
	b.interrupt(t)
	assertRestored(t, ns, "demo", before)
}

// With -a: every POST or PUT to /hooks/<letters> is the developer's,
// with or without a header; other paths and methods stay in the cluster.
func TestRouteNarrowedAll(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{})
	before := takeSnapshot(t, ns, "demo")
	port := laptop(t, "hooks")

	p := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(port), "-a", "--path-prefix", "/hooks/", "--path-regex", "/hooks/[a-z]+", "--method", "POST,PUT", "-w")
	p.waitOutput(t, "Intercepting service", 2*time.Minute)
	if want := "every HTTP request, marked or not, path starting with /hooks/, path matching /hooks/[a-z]+, method POST or PUT, go to localhost:"; !strings.Contains(p.output(), want) {
		t.Errorf("the active message lacks %q:\n%s", want, p.output())
	}
	checkRouted(t, svc, []request{
		{"POST", "/hooks/stripe", nil, "hooks"},
		{"PUT", "/hooks/github", header("x-dev", "alice"), "hooks"},
		{"GET", "/hooks/stripe", nil, ""},
		{"POST", "/hooks/42", nil, ""},
		{"POST", "/hooks/stripe/retry", nil, ""},
		{"POST", "/orders", nil, ""},
		{"GET", "/", nil, ""},
	})
	p.interrupt(t)
	assertRestored(t, ns, "demo", before)
}

// Two developers share one header on paths no request takes both of:
// both are served, and the first to leave keeps the Service switched for
// the other. A third whose path overlaps one of theirs is refused, told
// whose route holds it.
func TestRouteTwoDevelopersOneMarker(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{})
	before := takeSnapshot(t, ns, "demo")
	alice, bob := laptop(t, "alice"), laptop(t, "bob")

	a := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(alice), "-x", "x-team:checkout", "--path-prefix", "/cart", "-w")
	a.waitOutput(t, "Intercepting service", 2*time.Minute)
	b := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(bob), "-x", "X-Team:checkout", "--path-prefix", "/pay", "-w")
	b.waitOutput(t, "Intercepting service", 2*time.Minute)

	h := header("x-team", "checkout")
	checkRouted(t, svc, []request{
		{"GET", "/cart/1", h, "alice"},
		{"POST", "/pay/now", h, "bob"},
		{"GET", "/orders", h, ""},
		{"GET", "/cart/1", nil, ""},
	})

	// /cart/items overlaps alice's /cart: refused, naming her route.
	out, err := runPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(bob), "-x", "x-team:checkout", "--path-prefix", "/cart/items", "-w", "--timeout", "30s")
	if err == nil || !strings.Contains(out, "X-Team:checkout path /cart* is intercepted by") {
		t.Fatalf("an intercept of /cart/items on alice's header was not refused with her route named (err %v):\n%s", err, out)
	}
	// The refused CLI changed nothing: both are still served.
	checkRouted(t, svc, []request{{"GET", "/cart/items", h, "alice"}, {"GET", "/pay", h, "bob"}})

	a.cmd.Process.Signal(syscall.SIGTERM)
	if err := a.cmd.Wait(); err != nil {
		t.Fatalf("alice's kubectl-intercept: %v\n%s", err, a.output())
	}
	if !strings.Contains(a.output(), "stays switched") {
		t.Errorf("alice left without saying the Service stays switched for bob:\n%s", a.output())
	}
	checkRouted(t, svc, []request{{"GET", "/cart/1", h, ""}, {"GET", "/pay/1", h, "bob"}})
	b.interrupt(t)
	assertRestored(t, ns, "demo", before)
}

// doctor, for an intercept narrowed by path, sends its marked request to a
// path the route takes when the entry names none, and says when the
// entry's own path is one the route does not take.
func TestRouteDoctorNarrowed(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	deployDemo(t, ns, demoOptions{name: "cart"})
	run := laptopCLI(t)
	run("svc/cart", "-n", ns, "-l", strconv.Itoa(laptop(t, laptopPod)), "-x", "x-dev:alice", "--path-prefix", "/api/v2", "--detach")
	defer run("close", "svc/cart", "-n", ns)

	out, code := doctor(t, "svc/cart", "-n", ns, "--via", "svc/cart", "-x", "x-dev")
	if code != 0 {
		t.Errorf("doctor --via svc/cart: exit %d", code)
	}
	wantLines(t, "an entry without a path", out, "/api/v2) from the sidecar in pod cart-intercept-",
		"to a path of route X-Dev:alice path /api/v2* (by ", "✓ header x-dev reached svc/cart (pod cart-intercept-", "as GET /api/v2")
	if strings.Contains(out, "does not take") {
		t.Errorf("the doctor's request to the route's path is said not to be taken:\n%s", out)
	}
	out, _ = doctor(t, "svc/cart", "-n", ns, "--via", "svc/cart/checkout", "-x", "x-dev")
	wantLines(t, "an entry with a path the route does not take", out, "as GET /checkout",
		"The marked request reached svc/cart as GET /checkout, which route X-Dev:alice path /api/v2* does not take")
}
