//go:build e2e

package e2e

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// A port declared h2c (appProtocol) keeps HTTP/2 requests HTTP/2 all the
// way, to the in-cluster app and to the laptop, even when they are not
// gRPC; HTTP/1.1 callers still get through.
func TestDeclaredH2CPort(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{serviceMutate: func(s *corev1.Service) {
		s.Spec.Ports[0].AppProtocol = ptr.To("kubernetes.io/h2c")
	}})
	p := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(laptopDemo(t)), "-x", "x-dev:alice")
	p.waitOutput(t, "Intercepting service", 2*time.Minute)
	url := "http://" + net.JoinHostPort(svc.Spec.ClusterIP, "80") + "/"

	h2 := h2cClient(t)
	for _, tc := range []struct {
		name, dev string
		laptop    bool
	}{{"to laptop", "alice", true}, {"to cluster", "bob", false}} {
		for _, c := range []struct {
			client *http.Client
			proto  string
		}{{h2, "HTTP/2.0"}, {httpClient(10 * time.Second), "HTTP/1.1"}} {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Header.Set("x-dev", tc.dev)
			resp, err := c.client.Do(req)
			if err != nil {
				t.Fatalf("%s over %s: %v", tc.name, c.proto, err)
			}
			var e echo
			err = json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("%s over %s: %v", tc.name, c.proto, err)
			}
			if (e.Pod == laptopPod) != tc.laptop || e.Proto != c.proto {
				t.Errorf("%s, caller speaking %s: answered by %q, which saw %s", tc.name, c.proto, e.Pod, e.Proto)
			}
		}
	}
	p.interrupt(t)
}

// An app that dies mid-response: the caller sees the response cut short,
// as it would without the sidecar, on both routes; never a hang, never a
// short body passed off as whole.
func TestAppClosingMidResponse(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{})
	pods, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "app=demo"})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("demo pods: %v", err)
	}
	direct := net.JoinHostPort(pods.Items[0].Status.PodIP, "8080")
	cut := func(addr string, h http.Header, query string) error {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/bytes?"+query, nil)
		req.Header = h.Clone()
		resp, err := httpClient(20 * time.Second).Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err == nil {
			return errors.New("the whole body arrived (" + strconv.FormatInt(n, 10) + " bytes)")
		}
		if n > 65536 {
			return errors.New("more bytes arrived than the app sent: " + strconv.FormatInt(n, 10))
		}
		return err
	}
	queries := []string{"n=1048576&cut=65536", "n=1048576&cut=65536&chunked=1"}
	for _, q := range queries {
		err := cut(direct, http.Header{}, q)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("without the sidecar, %s: %v; want an unexpected EOF", q, err)
		}
	}

	p := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(laptopDemo(t)), "-x", "x-dev:alice")
	p.waitOutput(t, "Intercepting service", 2*time.Minute)
	addr := net.JoinHostPort(svc.Spec.ClusterIP, "80")
	for _, r := range []struct {
		name string
		h    http.Header
	}{{"to laptop", header("x-dev", "alice")}, {"to cluster", header("x-dev", "bob")}} {
		for _, q := range queries {
			start := time.Now()
			err := cut(addr, r.h, q)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("%s, %s: %v; want an unexpected EOF, as without the sidecar", r.name, q, err)
			}
			t.Logf("%s, %s: %v after %s", r.name, q, err, time.Since(start).Round(time.Millisecond))
		}
	}
	p.interrupt(t)
}

// Nothing listens where a request should go (the app's port in the
// cluster, or the developer's local port): the caller gets at once a 502
// that says what is wrong, where without the sidecar it would have had a
// refused connection.
func TestNothingListening(t *testing.T) {
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{serviceMutate: func(s *corev1.Service) {
		s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "dead", Port: 81, TargetPort: intstr.FromInt32(9999), Protocol: corev1.ProtocolTCP})
	}})
	addr := net.JoinHostPort(svc.Spec.ClusterIP, "81")
	c := &http.Client{Timeout: 10 * time.Second, Transport: clusterTransport(&http.Transport{DisableKeepAlives: true})}
	if resp, err := c.Get("http://" + addr + "/"); err == nil {
		resp.Body.Close()
		t.Fatalf("without the sidecar port 81 answered %s; want a refused connection", resp.Status)
	}

	// A local port nobody listens on: the developer has not started the
	// service yet.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	idle := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	p := startPlugin(t, "svc/demo", "-n", ns, "-r", "81", "-l", strconv.Itoa(idle), "-x", "x-dev:alice")
	p.waitOutput(t, "Intercepting service", 2*time.Minute)
	if !p.printsSoon("nothing listens on localhost:" + strconv.Itoa(idle)) {
		t.Errorf("no warning that nothing listens on the local port:\n%s", p.output())
	}
	for _, r := range []struct {
		name, dev, reason string
	}{
		{"to laptop", "alice", "nothing answers on 127.0.0.1:" + strconv.Itoa(idle) + " on the developer's machine"},
		{"to cluster", "bob", "the app does not answer on 127.0.0.1:9999"},
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
		req.Header.Set("x-dev", r.dev)
		start := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			t.Errorf("%s: %v; want a 502 that says why", r.name, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), r.reason) {
			t.Errorf("%s: %s %q; want 502 with %q", r.name, resp.Status, body, r.reason)
		}
		t.Logf("%s: %s after %s: %s", r.name, resp.Status, time.Since(start).Round(time.Millisecond), strings.TrimSpace(string(body)))
	}
	p.interrupt(t)
}
