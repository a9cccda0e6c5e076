//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// doctor runs `kubectl intercept doctor` and returns its output and exit
// code.
func doctor(t *testing.T, args ...string) (string, int) {
	t.Helper()
	start := time.Now()
	out, err := runPlugin(t, append([]string{"doctor"}, args...)...)
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("kubectl-intercept doctor %v: %v", args, err)
	}
	t.Logf("doctor %v: exit %d after %s\n%s", args, code, time.Since(start).Round(time.Millisecond), out)
	return out, code
}

func wantLines(t *testing.T, what, out string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(out, l) {
			t.Errorf("%s: output lacks %q:\n%s", what, l, out)
		}
	}
}

// The doctor tells which of the header, cookie and baggage survive the way
// from an entry to an intercepted Service: cart is intercepted; front, a
// demo that calls cart passing on only the headers it is told to, stands
// for the services in between.
func TestDoctor(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	cart := deployDemo(t, ns, demoOptions{name: "cart"})
	deployDemo(t, ns, demoOptions{name: "front", replicas: 1})
	cartURL := serviceURL(cart)
	// through is an entry at front that calls cart passing on forward.
	through := func(forward string) string {
		return "svc/front/call?to=" + url.QueryEscape(cartURL+"api/cart") + "&forward=" + url.QueryEscape(forward)
	}

	out, code := doctor(t, "svc/cart", "-n", ns, "--via", "svc/cart")
	if code == 0 {
		t.Fatal("the doctor succeeded on a Service nobody intercepts")
	}
	wantLines(t, "not intercepted", out, "is not intercepted", "kubectl intercept svc/cart -n "+ns+" -l PORT")

	run := laptopCLI(t)
	run("svc/cart", "-n", ns, "-l", strconv.Itoa(laptop(t, laptopPod)), "--detach")
	defer run("close", "svc/cart", "-n", ns)

	everyCarrier := []string{
		"✓ header X-C6O-INTERCEPT reached svc/cart (pod cart-intercept-",
		"✓ cookie x-intercept reached svc/cart (pod cart-intercept-",
		"✓ baggage x-intercept reached svc/cart (pod cart-intercept-",
		"Your header X-C6O-INTERCEPT gets through",
	}
	// The intercepted Service itself as the entry, from inside the
	// cluster: nothing in between, everything arrives.
	out, code = doctor(t, "svc/cart", "-n", ns, "--via", "svc/cart/checkout")
	if code != 0 {
		t.Errorf("entry svc/cart: exit %d", code)
	}
	wantLines(t, "entry svc/cart", out, append(everyCarrier, "from the sidecar in pod cart-intercept-", "as GET /checkout", "The entry answered 200 OK")...)

	// A URL this machine reaches: the Service's ClusterIP.
	fromHost(t, "entry URL of the ClusterIP", func(t *testing.T) {
		out, code := doctor(t, "svc/cart", "-n", ns, "--via", cartURL+"from-host")
		if code != 0 {
			t.Errorf("entry %s: exit %d", cartURL, code)
		}
		wantLines(t, "entry URL", out, append(everyCarrier, "Sent GET "+cartURL+"from-host with", "as GET /from-host")...)
	})

	// front passes the header and baggage on, not the cookie.
	out, code = doctor(t, "svc/cart", "-n", ns, "--via", through("X-C6O-INTERCEPT,baggage"), "--wait", "2s")
	if code != 0 {
		t.Errorf("front forwarding the header: exit %d", code)
	}
	wantLines(t, "front forwarding the header", out,
		"✓ header X-C6O-INTERCEPT reached svc/cart (pod cart-intercept-", "as GET /api/cart",
		"✗ cookie x-intercept did not reach svc/cart",
		"✓ baggage x-intercept reached svc/cart",
		"Cookie x-intercept is dropped between")

	// front propagates baggage only: the header the developer would
	// intercept with is lost, baggage would work.
	out, code = doctor(t, "svc/cart", "-n", ns, "--via", through("baggage"), "--wait", "2s")
	if code == 0 {
		t.Error("the doctor succeeded although the header did not arrive")
	}
	wantLines(t, "front dropping the header", out,
		"✗ header X-C6O-INTERCEPT did not reach svc/cart",
		"✓ baggage x-intercept reached svc/cart",
		"Header X-C6O-INTERCEPT is dropped between",
		"intercept svc/cart with --baggage x-intercept=VALUE")

	// The cookie is what the developer would use (--cookie): it passes,
	// so the doctor succeeds although the header is dropped.
	out, code = doctor(t, "svc/cart", "-n", ns, "--via", through("cookie"), "--cookie", "dev=alice", "--wait", "2s")
	if code != 0 {
		t.Errorf("front passing the cookie on, --cookie dev: exit %d", code)
	}
	wantLines(t, "front passing the cookie", out, "✓ cookie dev reached svc/cart", "✗ header X-C6O-INTERCEPT did not reach svc/cart")

	// An entry that fails before it calls cart.
	out, code = doctor(t, "svc/cart", "-n", ns, "--via", "svc/front/status/503", "--wait", "1s")
	if code == 0 {
		t.Error("the doctor succeeded although nothing arrived")
	}
	wantLines(t, "failing entry", out, "The entry answered 503 Service Unavailable",
		fmt.Sprintf("Nothing reached svc/cart, and %s answered 503 Service Unavailable", "svc/front/status/503"))
}
