package intercept

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/factory"
	cmdutil "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/util"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// --path-prefix, --path-regex and --method narrow whichever marker is
// given, --all included, in the form the sidecar holds; --method takes a
// comma list and is repeatable.
func TestNarrowedRoute(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    *Options
		want route.Route
	}{
		{"header and a prefix", opts(func(o *Options) { o.Header = "x-dev:alice"; o.PathPrefix = "/api/v2" }),
			route.Route{Header: "x-dev", Value: "alice", PathPrefix: "/api/v2"}},
		{"the default header and a regex", opts(func(o *Options) { o.PathRegex = "/users/[0-9]+" }),
			route.Route{Header: route.DefaultHeaderName, Value: route.DefaultHeaderValue, PathRegex: "/users/[0-9]+"}},
		{"cookie and methods", opts(func(o *Options) { o.Cookie = "dev=alice"; o.Methods = []string{"POST"} }),
			route.Route{Cookie: "dev", Value: "alice", Methods: mustMethods(t, "POST")}},
		{"all, narrowed by all three", opts(func(o *Options) {
			o.All = true
			o.PathPrefix = "/webhooks"
			o.PathRegex = "/webhooks/[a-z]+"
			o.Methods = []string{"post,put", "PATCH"}
		}), route.Route{All: true, PathPrefix: "/webhooks", PathRegex: "/webhooks/[a-z]+", Methods: mustMethods(t, "POST,PUT,PATCH")}},
	} {
		got, err := tc.o.matchRoute()
		if err != nil || got != tc.want {
			t.Errorf("%s: got %#v, %v; want %#v", tc.name, got, err, tc.want)
		}
		if !got.Narrowed() {
			t.Errorf("%s: %#v is not narrowed", tc.name, got)
		}
	}
	if r, err := opts(func(o *Options) { o.All = true }).matchRoute(); err != nil || r.Narrowed() {
		t.Errorf("--all alone: %#v, %v; want every connection, not narrowed", r, err)
	}
}

func mustMethods(t *testing.T, s string) string {
	t.Helper()
	m, err := route.ParseMethods(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A narrowing the sidecar could not match is refused before anything
// changes, naming the flag, and Validate changes nothing.
func TestNarrowValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    *Options
		want string
	}{
		{"a prefix", opts(func(o *Options) { o.PathPrefix = "/api" }), ""},
		{"a prefix that is no path", opts(func(o *Options) { o.PathPrefix = "api" }), "--path-prefix"},
		{"a regex that does not compile", opts(func(o *Options) { o.PathRegex = "/users/(" }), "--path-regex"},
		{"an empty method", opts(func(o *Options) { o.Methods = []string{"GET,"} }), "--method"},
		{"a method that is not a token", opts(func(o *Options) { o.Methods = []string{"GE T"} }), "--method"},
		{"with --all", opts(func(o *Options) { o.All = true; o.Methods = []string{"POST"} }), ""},
		{"with --all, a bad prefix", opts(func(o *Options) { o.All = true; o.PathPrefix = "webhooks" }), "--path-prefix"},
		// Narrowed, --all takes HTTP requests, which an ngrok endpoint carries.
		{"with --all through ngrok", opts(func(o *Options) { o.All = true; o.PathPrefix = "/hooks"; o.Tunnel = "ngrok"; o.NgrokAuthtoken = "t" }), ""},
	} {
		tc.o.LocalPort, tc.o.Timeout = 3000, 1
		before := *tc.o
		err := tc.o.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
		if !reflect.DeepEqual(before, *tc.o) {
			t.Errorf("%s: Validate changed the options", tc.name)
		}
	}
}

// The flags as typed: an empty --path-prefix or --path-regex is refused
// (it would narrow nothing), --method is repeatable and a comma list; a
// bad one ends the command before the cluster is asked.
func TestNarrowFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"svc/web", "-l", "3000", "--path-prefix", ""}, "--path-prefix is empty"},
		{[]string{"svc/web", "-l", "3000", "--path-regex="}, "--path-regex is empty"},
		{[]string{"svc/web", "-l", "3000", "--path-regex", "("}, "--path-regex"},
		{[]string{"svc/web", "-l", "3000", "--method", ""}, "--method"},
		{[]string{"svc/web", "-l", "3000", "-a", "--path-prefix", "nope"}, "--path-prefix"},
	} {
		var out bytes.Buffer
		cs := fake.NewClientset()
		cmd := NewCmdIntercept(factory.NewFor(cs, nil, "shop"), genericiooptions.IOStreams{Out: &out, ErrOut: &out})
		cmd.SetArgs(tc.args)
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
		if len(cs.Actions()) > 0 {
			t.Errorf("%v: the cluster was asked: %v", tc.args, cs.Actions())
		}
	}
	// Both spellings of several methods give one route.
	cmd := NewCmdIntercept(factory.NewFor(fake.NewClientset(), nil, "shop"), genericiooptions.IOStreams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}})
	if err := cmd.ParseFlags([]string{"--method", "GET,post", "--method", "PUT"}); err != nil {
		t.Fatal(err)
	}
	got, err := cmd.Flags().GetStringArray("method")
	if err != nil {
		t.Fatal(err)
	}
	r1, err1 := (&MatchFlags{NarrowFlags: NarrowFlags{Methods: got}}).matchRoute()
	r2, err2 := (&MatchFlags{NarrowFlags: NarrowFlags{Methods: []string{"GET", "POST", "PUT"}}}).matchRoute()
	if err1 != nil || err2 != nil || r1 != r2 {
		t.Errorf("--method GET,post --method PUT gives %#v (%v), --method GET --method POST --method PUT %#v (%v)", r1, err1, r2, err2)
	}
}

// Once active, a narrowed intercept says which paths and methods come
// here, that the rest goes to the cluster with the marker too, and how to
// send a request the route takes; with --all, a request without a header.
func TestPrintActiveNarrowed(t *testing.T) {
	st := &session.Started{
		Record:  &session.Record{Port: "http", Workload: "web"},
		Service: svc("shop", "web", corev1.ServicePort{Name: "http", Port: 8080}),
	}
	prefix := route.Route{Header: "x-dev", Value: "alice", PathPrefix: "/api/v2", Methods: mustMethods(t, "POST")}
	all := route.Route{All: true, PathPrefix: "/webhooks", Methods: mustMethods(t, "GET,HEAD")}
	for _, tc := range []struct {
		route   route.Route
		want    []string
		notWant []string
	}{
		{prefix, []string{
			"requests with header x-dev:alice, path starting with /api/v2, method POST, go to localhost:3000",
			"Your requests on other paths or with other methods go to",
			"curl -X " + route.SampleMethod(prefix) + " -H 'x-dev: alice' http://web.shop:8080" + route.SamplePath(prefix),
		}, []string{"every connection"}},
		{all, []string{
			"every HTTP request, marked or not, path starting with /webhooks, method GET or HEAD, go to localhost:3000",
			"Other requests, and connections that do not speak HTTP, go to",
			"http://web.shop:8080" + route.SamplePath(all),
		}, []string{"curl -H", "every connection"}},
	} {
		var out bytes.Buffer
		o := &runner{Namespace: "shop", Service: "web", Route: tc.route}
		tunnels := []portTunnel{{entry: st.Record.Ports()[0], local: 3000}}
		o.printActive(cmdutil.NewProgress(&out, &out, false), st, tunnels, "web-copy-1", &local.Front{})
		for _, want := range tc.want {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s: output lacks %q:\n%s", tc.route, want, out.String())
			}
		}
		for _, bad := range tc.notWant {
			if strings.Contains(out.String(), bad) {
				t.Errorf("%s: output says %q:\n%s", tc.route, bad, out.String())
			}
		}
	}
}

// --dry-run says which requests a narrowed route would send here (the
// route is in no object it prints); an intercept that is not narrowed
// prints the objects alone, as before.
func TestDryRunSaysTheNarrowing(t *testing.T) {
	st := &session.Started{Service: svc("shop", "web"), Record: &session.Record{Copy: "web-intercept-x"}}
	var out bytes.Buffer
	if err := printDryRun(&out, st, route.Route{Header: "x-dev", Value: "alice", PathRegex: "/users/[0-9]+"}); err != nil {
		t.Fatal(err)
	}
	if want := "# route: requests with header x-dev:alice, path matching /users/[0-9]+, go to this machine"; !strings.HasPrefix(out.String(), want) {
		t.Errorf("the dry run of a narrowed route:\n%s\nwant it to begin %q", out.String(), want)
	}
	out.Reset()
	if err := printDryRun(&out, st, route.Route{Header: "x-dev", Value: "alice"}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "# route:") {
		t.Errorf("the dry run of a route that is not narrowed speaks of it:\n%s", out.String())
	}
}

// -a narrowed by path or method reads each HTTP request: on a port that
// declares another protocol it is refused before anything changes, and
// the refusal names the flags that make it so, not just -a.
func TestNarrowedAllNeedsAnHTTPPort(t *testing.T) {
	svc := &corev1.Service{Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "tcp-db", Port: 5432}, {Name: "https", Port: 443}}}}
	svc.Name = "db"
	for _, o := range []*Options{
		opts(func(o *Options) { o.All = true; o.PathPrefix = "/x" }),
		opts(func(o *Options) { o.All = true; o.Methods = []string{"POST"} }),
	} {
		r, err := o.matchRoute()
		if err != nil {
			t.Fatal(err)
		}
		if r.WholeConnections() {
			t.Fatalf("%v takes whole connections: the port's protocol would not be checked", r)
		}
		for i := range svc.Spec.Ports {
			err := workload.HeaderRoutable(svc, &svc.Spec.Ports[i])
			if err == nil || !strings.Contains(err.Error(), "with -a, without --path-prefix, --path-regex, --method or --wiretap") {
				t.Errorf("port %s for %v: %v", svc.Spec.Ports[i].Name, r, err)
			}
		}
	}
}
