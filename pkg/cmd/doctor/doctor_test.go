package doctor

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/internal/golden"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/factory"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// --via takes a URL the laptop reaches or svc/NAME[.NS][:PORT][/PATH], and
// says what is wrong with anything else.
func TestParseEntry(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want DoctorEntry
		err  string
	}{
		{"https://staging.example.com/checkout", DoctorEntry{URL: "https://staging.example.com/checkout"}, ""},
		{" http://10.0.0.1:8080 ", DoctorEntry{URL: "http://10.0.0.1:8080", NoPath: true}, ""},
		{"svc/frontend", DoctorEntry{Service: "frontend", Path: "/", NoPath: true}, ""},
		{"svc/frontend:8080/checkout?step=2", DoctorEntry{Service: "frontend", Port: "8080", Path: "/checkout?step=2"}, ""},
		{"service/frontend:http", DoctorEntry{Service: "frontend", Port: "http", Path: "/", NoPath: true}, ""},
		{"services/frontend.shop:80/", DoctorEntry{Service: "frontend", Namespace: "shop", Port: "80", Path: "/", NoPath: true}, ""},
		{"svc/frontend?x=1", DoctorEntry{Service: "frontend", Path: "/?x=1"}, ""},
		{"svc/front/call?to=http://10.0.0.2/&forward=baggage", DoctorEntry{Service: "front", Path: "/call?to=http://10.0.0.2/&forward=baggage"}, ""},
		{"", DoctorEntry{}, "say where the request enters with --via"},
		{"staging.example.com/checkout", DoctorEntry{}, "neither a URL"},
		{"ftp://example.com/", DoctorEntry{}, "give an http:// or https:// URL"},
		{"http:///path", DoctorEntry{}, "names no host"},
		{"svc/", DoctorEntry{}, "names no Service"},
		{"svc/Front_End", DoctorEntry{}, "not a Service name"},
		{"svc/front.Shop_1", DoctorEntry{}, "not a namespace name"},
		{"svc/front:", DoctorEntry{}, "nothing after the colon"},
		{"svc/front:70000", DoctorEntry{}, "not in 1-65535"},
		{"svc/front:no_port!", DoctorEntry{}, "neither a port number nor a port name"},
		{"deployment/front", DoctorEntry{}, "neither a URL"},
	} {
		got, err := parseEntry(tc.in)
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("parseEntry(%q): error %v, want one with %q", tc.in, err, tc.err)
			continue
		}
		if got != tc.want {
			t.Errorf("parseEntry(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

// Whatever --via holds, parseEntry answers an entry or an error, and an
// entry is either a URL or a Service with a path.
func FuzzParseEntry(f *testing.F) {
	for _, s := range []string{"https://a.example/x", "svc/a:80/p?q", "svc/a.b:http", "service/", "svc/a:", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := parseEntry(s)
		if err != nil {
			return
		}
		if (e.URL == "") == (e.Service == "") || (e.Service != "" && !strings.HasPrefix(e.Path, "/")) {
			t.Fatalf("parseEntry(%q) = %+v", s, e)
		}
	})
}

// -x, --cookie and --baggage take intercept's forms or a name alone; the
// carriers named must arrive, the header when none is named.
func TestMarkerNames(t *testing.T) {
	for _, tc := range []struct {
		header, cookie, baggage string
		want                    tunnel.Marker
		expect                  string
		err                     string
	}{
		{"", "", "", tunnel.Marker{Header: "X-C6O-INTERCEPT", Cookie: "x-intercept", Baggage: "x-intercept"}, "[header]", ""},
		{"x-dev:alice", "", "", tunnel.Marker{Header: "x-dev", Cookie: "x-intercept", Baggage: "x-intercept"}, "[header]", ""},
		{"x-dev", "dev=alice", "", tunnel.Marker{Header: "x-dev", Cookie: "dev", Baggage: "x-intercept"}, "[header cookie]", ""},
		{"", "", " dev = alice%20smith", tunnel.Marker{Header: "X-C6O-INTERCEPT", Cookie: "x-intercept", Baggage: "dev"}, "[baggage]", ""},
		{"", "dev", "", tunnel.Marker{Header: "X-C6O-INTERCEPT", Cookie: "dev", Baggage: "x-intercept"}, "[cookie]", ""},
		{"x dev", "", "", tunnel.Marker{}, "", "header name"},
		{"", "de v=alice", "", tunnel.Marker{}, "", "cookie names cannot have"},
		{"", "", "de,v", tunnel.Marker{}, "", "baggage keys cannot have"},
	} {
		m, expect, err := markerNames(tc.header, tc.cookie, tc.baggage)
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q %q %q: error %v, want one with %q", tc.header, tc.cookie, tc.baggage, err, tc.err)
			continue
		}
		if err != nil {
			continue
		}
		if m != tc.want || fmtCarriers(expect) != tc.expect {
			t.Errorf("%q %q %q: %+v expecting %s; want %+v expecting %s", tc.header, tc.cookie, tc.baggage, m, fmtCarriers(expect), tc.want, tc.expect)
		}
	}
}

func fmtCarriers(cs []tunnel.Carrier) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = string(c)
	}
	return "[" + strings.Join(s, " ") + "]"
}

func TestDoctorValidate(t *testing.T) {
	for _, tc := range []struct {
		o    DoctorOptions
		want string
	}{
		{DoctorOptions{Via: "svc/front", Wait: time.Second, Service: "cart"}, ""},
		{DoctorOptions{Via: "svc/front", Wait: time.Second}, "name the intercepted Service"},
		{DoctorOptions{Wait: time.Second}, "--via"},
		{DoctorOptions{Via: "svc/front"}, "--wait"},
		{DoctorOptions{Via: "svc/front", Wait: time.Second, Header: "bad name"}, "header name"},
	} {
		err := tc.o.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.o, err, tc.want)
		}
	}
}

// The doctor works only through a live intercept whose Service points at
// the copy, and says what to do otherwise.
func TestDoctorNeedsAnIntercept(t *testing.T) {
	rec := &session.Record{Version: 1, ID: "abc123", Service: "cart", Workload: "cart", Copy: "cart-intercept-abc123",
		Port: "http", Selector: map[string]string{"app": "cart"}}
	plain := svc("shop", "cart", corev1.ServicePort{Name: "http", Port: 80})
	plain.Spec.Selector = map[string]string{"app": "cart"}
	switched := plain.DeepCopy()
	switched.Annotations = map[string]string{session.AnnotationRecord: rec.Encode()}
	switched.Spec.Selector = rec.SessionSelector()
	reverted := switched.DeepCopy()
	reverted.Spec.Selector = map[string]string{"app": "cart"}
	// The copy's pods are the copy's by their owner chain.
	copyDeploy := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: rec.Copy, UID: "copy-uid",
		Labels:      map[string]string{session.LabelManagedBy: session.ManagedByValue, session.LabelSession: rec.ID},
		Annotations: map[string]string{session.AnnotationRecord: rec.Encode()}}}
	copyRS := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: rec.Copy + "-5d8f", UID: "rs-uid",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: rec.Copy, UID: "copy-uid", Controller: ptr.To(true)}}}}
	pod := func(name string, ready, sidecar bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Labels: rec.SessionSelector(),
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: copyRS.Name, UID: "rs-uid", Controller: ptr.To(true)}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1"}}
		status := corev1.ConditionFalse
		if ready {
			status = corev1.ConditionTrue
		}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
		if sidecar {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "intercept-proxy", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
		}
		return p
	}
	for _, tc := range []struct {
		name string
		objs []any
		want string
	}{
		{"not intercepted", []any{plain}, "Start one in another terminal first (kubectl intercept svc/cart -n shop -l PORT"},
		{"reverted", []any{reverted}, "no longer points at the intercept's copy"},
		{"no running pod", []any{switched, pod("b", false, false), pod("c", true, false)}, "no running pod to watch through"},
		{"running pods", []any{switched, pod("b", true, true), pod("a", false, true), pod("c", true, false)}, ""},
	} {
		cs := fake.NewClientset(copyDeploy, copyRS)
		for _, o := range tc.objs {
			switch o := o.(type) {
			case *corev1.Service:
				cs.Tracker().Add(o)
			case *corev1.Pod:
				cs.Tracker().Add(o)
			}
		}
		o := &DoctorOptions{Namespace: "shop", Service: "cart", f: factory.NewFor(cs, nil, "shop")}
		pods, _, err := o.sidecars(context.Background())
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
		if tc.want == "" && strings.Join(pods, ",") != "a,b" {
			t.Errorf("%s: watching through %v, want the running pods with a running sidecar", tc.name, pods)
		}
	}
}

// A Service entry goes to the port it names, or the only one.
func TestEntryPort(t *testing.T) {
	one := svc("shop", "front", corev1.ServicePort{Name: "http", Port: 8080})
	two := svc("shop", "front", corev1.ServicePort{Name: "http", Port: 80}, corev1.ServicePort{Name: "admin", Port: 9000})
	for _, tc := range []struct {
		s    *corev1.Service
		key  string
		want int32
		err  string
	}{
		{one, "", 8080, ""},
		{two, "admin", 9000, ""},
		{two, "80", 80, ""},
		{two, "", 0, "say which, as svc/front:PORT"},
		{two, "8080", 0, `no port "8080" (it has http=80, admin=9000)`},
	} {
		got, err := entryPort(tc.s, tc.key)
		if got != tc.want || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("port %q of %d: %d, %v; want %d, %q", tc.key, len(tc.s.Spec.Ports), got, err, tc.want, tc.err)
		}
	}
}

// The report says what was sent, which carrier reached the Service and
// where, and what to fix for those that did not.
func TestRenderDoctor(t *testing.T) {
	m := tunnel.Marker{Nonce: "3f9a1c0b5e7d2a46", Header: "X-C6O-INTERCEPT", Cookie: "x-intercept", Baggage: "x-intercept"}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	hit := func(c tunnel.Carrier, name, pod string) tunnel.Hit {
		return tunnel.Hit{Carrier: c, Name: name, Method: "GET", Path: "/api/cart", Pod: pod, Time: at}
	}
	base := doctorReport{Service: "cart", Entry: "https://staging.example.com/checkout", Sent: "https://staging.example.com/checkout",
		Marker: m, Expect: []tunnel.Carrier{tunnel.CarrierHeader}, Status: 200, Waited: 5 * time.Second}
	with := func(f func(*doctorReport)) doctorReport { r := base; f(&r); return r }
	for _, tc := range []struct {
		name   string
		r      doctorReport
		want   []string
		absent []string
	}{
		{"every carrier", with(func(r *doctorReport) {
			r.Hits = []tunnel.Hit{hit("header", "X-C6O-INTERCEPT", "cart-intercept-1-abcde"), hit("cookie", "x-intercept", "cart-intercept-1-abcde"),
				hit("baggage", "x-intercept", "cart-intercept-1-fghij"), hit("header", "X-C6O-INTERCEPT", "cart-intercept-1-fghij")}
		}), []string{
			"Sent GET https://staging.example.com/checkout with header X-C6O-INTERCEPT, cookie x-intercept, baggage x-intercept (marker doctor-3f9a1c0b5e7d2a46)\n",
			"The entry answered 200 OK\n",
			"✓ header X-C6O-INTERCEPT reached svc/cart (pod cart-intercept-1-abcde) as GET /api/cart, and 1 more request\n",
			"✓ cookie x-intercept reached svc/cart (pod cart-intercept-1-abcde) as GET /api/cart\n",
			"✓ baggage x-intercept reached svc/cart (pod cart-intercept-1-fghij) as GET /api/cart\n",
			"Your header X-C6O-INTERCEPT gets through: an intercept of svc/cart with -x X-C6O-INTERCEPT:VALUE catches the requests that enter at https://staging.example.com/checkout.",
		}, []string{"✗", "dropped"}},
		{"header dropped, baggage passed on", with(func(r *doctorReport) {
			r.Hits = []tunnel.Hit{hit("baggage", "x-intercept", "cart-intercept-1-abcde")}
		}), []string{
			"✗ header X-C6O-INTERCEPT did not reach svc/cart\n",
			"✗ cookie x-intercept did not reach svc/cart\n",
			"✓ baggage x-intercept reached svc/cart",
			"Header X-C6O-INTERCEPT is dropped between https://staging.example.com/checkout and svc/cart: each service in between must copy it onto its outgoing requests",
			"Cookie x-intercept is dropped",
			"Your header X-C6O-INTERCEPT does not get through, the baggage x-intercept does: intercept svc/cart with --baggage x-intercept=VALUE",
		}, []string{"gets through:", "Baggage x-intercept is dropped"}},
		{"renamed on the way", with(func(r *doctorReport) {
			r.Hits = []tunnel.Hit{hit("other", "X-Dev", "p1"), hit("other", "X-Dev", "p1")}
		}), []string{
			"✗ header X-C6O-INTERCEPT did not reach svc/cart",
			"! the marker reached svc/cart in header X-Dev (pod p1, GET /api/cart): a service on the way moved it there\n",
		}, []string{"Nothing reached"}},
		{"nothing, entry failing", with(func(r *doctorReport) { r.Status = 503 }), []string{
			"The entry answered 503 Service Unavailable\n",
			"Nothing reached svc/cart, and https://staging.example.com/checkout answered 503 Service Unavailable: the request may have failed before it got that far.",
		}, []string{"dropped between"}},
		{"nothing, entry fine", base, []string{
			"Nothing reached svc/cart although https://staging.example.com/checkout answered 200 OK: the entry may not call svc/cart for this path",
			"(5s)",
		}, nil},
		{"nothing, redirect", with(func(r *doctorReport) { r.Status = 302 }), []string{
			"a redirect, which the doctor does not follow. Give --via the URL it redirects to.",
		}, nil},
		{"request failed", with(func(r *doctorReport) { r.Status, r.SendErr = 0, errors.New("dial tcp: connection refused") }), []string{
			"The request failed: dial tcp: connection refused\n",
			"Nothing reached svc/cart: the request to https://staging.example.com/checkout failed before it was answered. Check that this machine reaches it.",
		}, []string{"answered 0"}},
		{"from inside the cluster, cookie expected", with(func(r *doctorReport) {
			r.Entry, r.Sent, r.From = "svc/front/checkout", "http://10.96.0.7:80/checkout", "cart-intercept-1-abcde"
			r.Expect = []tunnel.Carrier{tunnel.CarrierCookie}
			r.Hits = []tunnel.Hit{hit("header", "X-C6O-INTERCEPT", "cart-intercept-1-abcde")}
		}), []string{
			"Sent GET svc/front/checkout (10.96.0.7:80) from the sidecar in pod cart-intercept-1-abcde with header",
			"Your cookie x-intercept does not get through, the header X-C6O-INTERCEPT does: intercept svc/cart with -x X-C6O-INTERCEPT:VALUE",
		}, nil},
	} {
		var out bytes.Buffer
		renderDoctor(&out, tc.r)
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s: report lacks %q:\n%s", tc.name, w, out.String())
			}
		}
		for _, a := range tc.absent {
			if strings.Contains(out.String(), a) {
				t.Errorf("%s: report has %q:\n%s", tc.name, a, out.String())
			}
		}
	}
}

func TestDoctorGolden(t *testing.T) {
	m := tunnel.Marker{Nonce: "3f9a1c0b5e7d2a46", Header: "X-C6O-INTERCEPT", Cookie: "x-intercept", Baggage: "x-intercept"}
	r := doctorReport{Service: "cart", Entry: "svc/frontend:8080/checkout", Sent: "http://10.96.0.12:8080/checkout", From: "cart-intercept-1-abcde",
		Marker: m, Expect: []tunnel.Carrier{tunnel.CarrierHeader}, Status: 200, Waited: 5 * time.Second,
		Hits: []tunnel.Hit{
			{Carrier: tunnel.CarrierBaggage, Name: "x-intercept", Method: "GET", Path: "/api/cart", Pod: "cart-intercept-1-abcde", Time: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)},
			{Carrier: tunnel.CarrierOther, Name: "X-Dev", Method: "GET", Path: "/api/cart", Pod: "cart-intercept-1-abcde", Time: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)},
		}}
	var out bytes.Buffer
	renderDoctor(&out, r)
	golden.Assert(t, "doctor", out.Bytes())
}

func svc(ns, name string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{Ports: ports}}
}
