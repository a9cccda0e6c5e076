//go:build e2e

package e2e

import (
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// With --tunnel ngrok the developer's requests reach the laptop through an
// ngrok endpoint, others the cluster, and a stranger who calls the
// endpoint's URL is refused. It needs an ngrok account: it runs only when
// NGROK_AUTHTOKEN is set, and the pods must reach ngrok's edge.
func TestNgrokTunnel(t *testing.T) {
	t.Parallel()
	if os.Getenv("NGROK_AUTHTOKEN") == "" {
		t.Skip("NGROK_AUTHTOKEN is not set: the ngrok tunnel needs an account")
	}
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{})
	before := takeSnapshot(t, ns, "demo")
	port := laptop(t, laptopPod)
	p := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(port), "--tunnel", "ngrok", "--inspect=false")
	p.waitOutput(t, "Intercepting service", 2*time.Minute)

	if got := routedTo(t, svc, header("X-C6O-INTERCEPT", "yes")); got != laptopPod {
		t.Fatalf("header request reached %q, want the laptop through ngrok", got)
	}
	if got := routedTo(t, svc, nil); got == laptopPod {
		t.Fatal("a request without the header reached the laptop")
	}
	url := regexp.MustCompile(`ngrok endpoint (https://\S+);`).FindStringSubmatch(p.output())
	if url == nil {
		t.Fatalf("no ngrok endpoint in the output:\n%s", p.output())
	}
	req, _ := http.NewRequest(http.MethodGet, url[1], nil)
	req.Header.Set("Ngrok-Skip-Browser-Warning", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a request to the endpoint without the secret got %d, want 403", resp.StatusCode)
	}

	p.cmd.Process.Signal(syscall.SIGINT)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("kubectl-intercept: %v\n%s", err, p.output())
	}
	assertRestored(t, ns, "demo", before)
}

// --tunnel ngrok without a token is refused before the cluster is touched.
func TestNgrokTunnelNeedsToken(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	deployDemo(t, ns, demoOptions{})
	before := takeSnapshot(t, ns, "demo")
	cmd := pluginCmd(t, "svc/demo", "-n", ns, "-l", "3000", "--tunnel", "ngrok")
	env := cmd.Env[:0:0]
	for _, kv := range cmd.Env {
		if !strings.HasPrefix(kv, "NGROK_AUTHTOKEN=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "NGROK_AUTHTOKEN") {
		t.Fatalf("want a refusal naming NGROK_AUTHTOKEN, got %v:\n%s", err, out)
	}
	assertRestored(t, ns, "demo", before)
}

// --preview=ngrok against a stand-in for ngrok's service that never
// answers: refused within the timeout, with what to check, before the
// cluster is touched.
func TestNgrokPreviewUnreachable(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	deployDemo(t, ns, demoOptions{})
	before := takeSnapshot(t, ns, "demo")
	standIn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer standIn.Close()
	go func() {
		for {
			c, err := standIn.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	cmd := pluginCmd(t, "svc/demo", "-n", ns, "-l", "3000", "--preview=ngrok", "--ngrok-connect-url", standIn.Addr().String())
	cmd.Env = append(cmd.Env, "NGROK_AUTHTOKEN=2fake_token")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "ngrok could not be reached") {
		t.Fatalf("want ngrok's unreachable error, got %v:\n%s", err, out)
	}
	assertRestored(t, ns, "demo", before)
}
