package intercept

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	cmdutil "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/util"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

func TestInterceptValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    *Options
		want string
	}{
		{"no local port", opts(func(o *Options) { o.Timeout = 1 }), "-l LOCAL_PORT"},
		{"port out of range", opts(func(o *Options) { o.LocalPort = 70000; o.Timeout = 1 }), "-l LOCAL_PORT"},
		{"wait and detach", opts(func(o *Options) { o.LocalPort = 3000; o.Wait = true; o.Detach = true; o.Timeout = 1 }), "contradict"},
		{"ok", opts(func(o *Options) { o.LocalPort = 3000; o.Timeout = 1 }), ""},
		{"dry run needs no port", opts(func(o *Options) { o.DryRun = true; o.Timeout = 1 }), ""},
		{"dry run without a port checks the rest", opts(func(o *Options) {
			o.DryRun = true
			o.Tunnel = "bogus"
			o.Timeout = -5 * time.Second
			o.Wait = true
			o.Detach = true
		}), "contradict"},
		{"dry run without a port and a bad timeout", opts(func(o *Options) { o.DryRun = true; o.Timeout = -5 * time.Second }), "--timeout must be positive"},
		{"dry run without a port and a bad tunnel", opts(func(o *Options) { o.DryRun = true; o.Timeout = 1; o.Tunnel = "bogus" }), "use builtin or ngrok"},
		{"dry run without a port and a command", opts(func(o *Options) { o.DryRun = true; o.Timeout = 1; o.Command = []string{"true"} }), "leave out -- CMD"},
		{"cookie", opts(func(o *Options) { o.LocalPort = 3000; o.Timeout = 1; o.Cookie = "dev=alice" }), ""},
		{"baggage", opts(func(o *Options) { o.LocalPort = 3000; o.Timeout = 1; o.Baggage = "dev=alice%20smith" }), ""},
		{"header and cookie", opts(func(o *Options) { o.LocalPort = 3000; o.Timeout = 1; o.Header = "x-dev:alice"; o.Cookie = "dev=alice" }), "give only one"},
		{"cookie and baggage", opts(func(o *Options) { o.LocalPort = 3000; o.Timeout = 1; o.Cookie = "dev=alice"; o.Baggage = "dev=alice" }), "give only one"},
		{"baggage and all", opts(func(o *Options) { o.LocalPort = 3000; o.Timeout = 1; o.Baggage = "dev=alice"; o.All = true }), "give only one"},
		{"cookie without value", opts(func(o *Options) { o.LocalPort = 3000; o.Timeout = 1; o.Cookie = "dev" }), "not name=value (for example dev=alice)"},
		{"cookie name not a token", opts(func(o *Options) { o.LocalPort = 3000; o.Timeout = 1; o.Cookie = "my dev=alice" }), "cookie names cannot have"},
		{"cookie value with a space", opts(func(o *Options) { o.LocalPort = 3000; o.Timeout = 1; o.Cookie = "dev=alice smith" }), "cookie values cannot have"},
		{"baggage value not encoded", opts(func(o *Options) { o.LocalPort = 3000; o.Timeout = 1; o.Baggage = "dev=alice smith" }), "write %20 instead"},
		{"bad header", opts(func(o *Options) { o.LocalPort = 3000; o.Timeout = 1; o.Header = "x-dev" }), "not name:value"},
		{"ngrok without a token", opts(func(o *Options) { o.LocalPort = 3000; o.Timeout = 1; o.Tunnel = "ngrok" }), "NGROK_AUTHTOKEN"},
		{"ngrok", opts(func(o *Options) { o.LocalPort = 3000; o.Timeout = 1; o.Tunnel = "ngrok"; o.NgrokAuthtoken = "t" }), ""},
		{"ngrok and all", opts(func(o *Options) {
			o.LocalPort = 3000
			o.Timeout = 1
			o.Tunnel = "ngrok"
			o.NgrokAuthtoken = "t"
			o.All = true
		}), "built-in tunnel"},
		{"unknown tunnel", opts(func(o *Options) { o.LocalPort = 3000; o.Timeout = 1; o.Tunnel = "ssh" }), "use builtin or ngrok"},
		{"two ports", opts(func(o *Options) { o.PortMaps = []string{"3000:http", "3001:grpc"}; o.Timeout = 1 }), ""},
		{"-p with the same number", opts(func(o *Options) { o.PortMaps = []string{"8080"}; o.Timeout = 1 }), ""},
		{"-p without LOCAL", opts(func(o *Options) { o.PortMaps = []string{":http"}; o.Timeout = 1 }), "LOCAL must be a port number"},
		{"-p without REMOTE", opts(func(o *Options) { o.PortMaps = []string{"3000:"}; o.Timeout = 1 }), "REMOTE must name a Service port"},
		{"-p LOCAL out of range", opts(func(o *Options) { o.PortMaps = []string{"70000:http"}; o.Timeout = 1 }), "LOCAL must be a port number"},
		{"-p a name alone", opts(func(o *Options) { o.PortMaps = []string{"http"}; o.Timeout = 1 }), "LOCAL must be a port number"},
		{"-p three parts", opts(func(o *Options) { o.PortMaps = []string{"3000:80:81"}; o.Timeout = 1 }), "REMOTE must name a Service port"},
		{"-p a port twice", opts(func(o *Options) { o.PortMaps = []string{"3000:http", "3001:http"}; o.Timeout = 1 }), "Service port http is given twice"},
		{"-p a local port twice", opts(func(o *Options) { o.PortMaps = []string{"3000:http", "3000:grpc"}; o.Timeout = 1 }), "local port 3000 is given twice"},
		{"-p and -r", opts(func(o *Options) { o.PortMaps = []string{"3000:http"}; o.RemotePort = "grpc"; o.Timeout = 1 }), "not both"},
		{"-p and -l", opts(func(o *Options) { o.PortMaps = []string{"3000:http"}; o.LocalPort = 3001; o.Timeout = 1 }), "not both"},
		{"-p twice and a preview", opts(func(o *Options) { o.PortMaps = []string{"3000:http", "3001:grpc"}; o.Preview = "local"; o.Timeout = 1 }), "take one port"},
		{"a command", opts(func(o *Options) { o.LocalPort = 3000; o.Timeout = 1; o.Command = []string{"true"} }), ""},
		{"a command that does not exist", opts(func(o *Options) { o.LocalPort = 3000; o.Timeout = 1; o.Command = []string{"no-such-command-here"} }), "no-such-command-here: command not found"},
		{"a command in the background", opts(func(o *Options) { o.LocalPort = 3000; o.Timeout = 1; o.Detach = true; o.Command = []string{"true"} }), "leave out --detach"},
		{"forwards", opts(func(o *Options) {
			o.LocalPort = 3000
			o.Timeout = 1
			o.Forwards = []string{"5432:postgres.db:5432", "redis:6379", "[fd00::1]:80"}
		}), ""},
		{"a forward without a port", opts(func(o *Options) { o.LocalPort = 3000; o.Timeout = 1; o.Forwards = []string{"postgres.db"} }), "want [LOCAL_PORT:]HOST:PORT"},
		{"a forward with a bad local port", opts(func(o *Options) { o.LocalPort = 3000; o.Timeout = 1; o.Forwards = []string{"99999:db:5432"} }), "want [LOCAL_PORT:]HOST:PORT"},
	} {
		before := *tc.o
		err := tc.o.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
		if !reflect.DeepEqual(before, *tc.o) {
			t.Errorf("%s: Validate changed the options:\n%+v\nto\n%+v", tc.name, before, *tc.o)
		}
	}
}

// With none of -x, --cookie, --baggage and --all the default header marks
// the developer's requests; each flag gives its kind of route.
func TestMatchRoute(t *testing.T) {
	for _, tc := range []struct {
		o    *Options
		want route.Route
	}{
		{opts(), route.Route{Header: route.DefaultHeaderName, Value: route.DefaultHeaderValue}},
		{opts(func(o *Options) { o.Header = "x-dev: alice" }), route.Route{Header: "x-dev", Value: "alice"}},
		{opts(func(o *Options) { o.Cookie = "dev=alice" }), route.Route{Cookie: "dev", Value: "alice"}},
		{opts(func(o *Options) { o.Baggage = "dev=alice%20smith" }), route.Route{Baggage: "dev", Value: "alice smith"}},
		{opts(func(o *Options) { o.All = true }), route.Route{All: true}},
	} {
		if got, err := tc.o.matchRoute(); err != nil || got != tc.want {
			t.Errorf("%+v: got %#v, %v; want %#v", tc.o, got, err, tc.want)
		}
	}
}

// Once active, the CLI says how to send matching requests: for a cookie,
// the line to paste in the browser's console and a curl; for baggage, a
// curl and why it keeps matching through the call graph.
func TestPrintActive(t *testing.T) {
	st := &session.Started{
		Record:  &session.Record{Port: "http"},
		Service: svc("shop", "web", corev1.ServicePort{Name: "http", Port: 8080}),
	}
	for _, tc := range []struct {
		route route.Route
		want  []string
	}{
		{route.Route{Header: "x-dev", Value: "alice"}, []string{
			"requests with header x-dev:alice go to localhost:3000",
			"curl -H 'x-dev: alice' http://web.shop:8080/",
		}},
		{route.Route{Cookie: "dev", Value: "alice"}, []string{
			"requests with cookie dev=alice go to localhost:3000",
			"curl -H 'Cookie: dev=alice' http://web.shop:8080/",
			`document.cookie = "dev=alice; path=/"`,
		}},
		{route.Route{Cookie: "dev", Value: "it's"}, []string{
			`curl -H 'Cookie: dev=it'\''s' http://web.shop:8080/`,
		}},
		{route.Route{Baggage: "dev", Value: "alice smith"}, []string{
			"requests with baggage dev=alice%20smith go to localhost:3000",
			"curl -H 'baggage: dev=alice%20smith' http://web.shop:8080/",
			"OpenTelemetry",
		}},
	} {
		var out bytes.Buffer
		o := &runner{Namespace: "shop", Service: "web", Route: tc.route}
		tunnels := []portTunnel{{entry: st.Record.Ports()[0], local: 3000}}
		o.printActive(cmdutil.NewProgress(&out, &out, false), st, tunnels, "web-copy-1", &local.Front{InspectURL: "http://127.0.0.1:4041/"})
		if !strings.Contains(out.String(), "See each intercepted request at http://127.0.0.1:4041/") {
			t.Errorf("%s: output lacks the inspector's address:\n%s", tc.route, out.String())
		}
		for _, want := range tc.want {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s: output lacks %q:\n%s", tc.route, want, out.String())
			}
		}
		if tc.route.Cookie == "" && strings.Contains(out.String(), "document.cookie") {
			t.Errorf("%s: output tells to set a cookie:\n%s", tc.route, out.String())
		}
	}
}

// --force goes only with -c.
func TestForceOnlyWithClean(t *testing.T) {
	o := opts(func(o *Options) { o.LocalPort = 3000; o.Timeout = 1; o.Force = true })
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--force goes with -c") {
		t.Errorf("--force without -c: %v", err)
	}
}

func opts(set ...func(*Options)) *Options {
	o := &Options{}
	for _, f := range set {
		f(o)
	}
	return o
}

func svc(ns, name string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{Ports: ports}}
}
