package cli

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/factory"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/podenv"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/session"
)

func TestResolveServiceName(t *testing.T) {
	ns := "shop"
	f := &factory.Factory{Namespace: ns}
	for in, want := range map[string]string{"svc/web": "web", "service/web": "web", "web": "web", "services/web": "web", "service.v1/web": "web"} {
		gotNS, got, err := resolveServiceName(f, in)
		if err != nil || got != want || gotNS != ns {
			t.Errorf("%q: got %s/%s, %v", in, gotNS, got, err)
		}
	}
	if _, _, err := resolveServiceName(f, "deployment/web"); err == nil {
		t.Error("deployment/web accepted as a Service")
	}
}

func TestInterceptValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    InterceptOptions
		want string
	}{
		{"no local port", InterceptOptions{Timeout: 1}, "-l LOCAL_PORT"},
		{"port out of range", InterceptOptions{LocalPort: 70000, Timeout: 1}, "-l LOCAL_PORT"},
		{"wait and detach", InterceptOptions{LocalPort: 3000, Wait: true, Detach: true, Timeout: 1}, "contradict"},
		{"ok", InterceptOptions{LocalPort: 3000, Timeout: 1}, ""},
		{"dry run needs no port", InterceptOptions{DryRun: true, Timeout: 1}, ""},
		{"cookie", InterceptOptions{LocalPort: 3000, Timeout: 1, Cookie: "dev=alice"}, ""},
		{"baggage", InterceptOptions{LocalPort: 3000, Timeout: 1, Baggage: "dev=alice%20smith"}, ""},
		{"header and cookie", InterceptOptions{LocalPort: 3000, Timeout: 1, Header: "x-dev:alice", Cookie: "dev=alice"}, "give only one"},
		{"cookie and baggage", InterceptOptions{LocalPort: 3000, Timeout: 1, Cookie: "dev=alice", Baggage: "dev=alice"}, "give only one"},
		{"baggage and all", InterceptOptions{LocalPort: 3000, Timeout: 1, Baggage: "dev=alice", All: true}, "give only one"},
		{"cookie without value", InterceptOptions{LocalPort: 3000, Timeout: 1, Cookie: "dev"}, "not name=value (for example dev=alice)"},
		{"cookie name not a token", InterceptOptions{LocalPort: 3000, Timeout: 1, Cookie: "my dev=alice"}, "cookie names cannot have"},
		{"cookie value with a space", InterceptOptions{LocalPort: 3000, Timeout: 1, Cookie: "dev=alice smith"}, "cookie values cannot have"},
		{"baggage value not encoded", InterceptOptions{LocalPort: 3000, Timeout: 1, Baggage: "dev=alice smith"}, "write %20 instead"},
		{"bad header", InterceptOptions{LocalPort: 3000, Timeout: 1, Header: "x-dev"}, "not name:value"},
		{"ngrok without a token", InterceptOptions{LocalPort: 3000, Timeout: 1, Tunnel: "ngrok"}, "NGROK_AUTHTOKEN"},
		{"ngrok", InterceptOptions{LocalPort: 3000, Timeout: 1, Tunnel: "ngrok", NgrokAuthtoken: "t"}, ""},
		{"ngrok and all", InterceptOptions{LocalPort: 3000, Timeout: 1, Tunnel: "ngrok", NgrokAuthtoken: "t", All: true}, "built-in tunnel"},
		{"unknown tunnel", InterceptOptions{LocalPort: 3000, Timeout: 1, Tunnel: "ssh"}, "use builtin or ngrok"},
		{"two ports", InterceptOptions{PortMaps: []string{"3000:http", "3001:grpc"}, Timeout: 1}, ""},
		{"-p with the same number", InterceptOptions{PortMaps: []string{"8080"}, Timeout: 1}, ""},
		{"-p without LOCAL", InterceptOptions{PortMaps: []string{":http"}, Timeout: 1}, "LOCAL must be a port number"},
		{"-p without REMOTE", InterceptOptions{PortMaps: []string{"3000:"}, Timeout: 1}, "REMOTE must name a Service port"},
		{"-p LOCAL out of range", InterceptOptions{PortMaps: []string{"70000:http"}, Timeout: 1}, "LOCAL must be a port number"},
		{"-p a name alone", InterceptOptions{PortMaps: []string{"http"}, Timeout: 1}, "LOCAL must be a port number"},
		{"-p three parts", InterceptOptions{PortMaps: []string{"3000:80:81"}, Timeout: 1}, "REMOTE must name a Service port"},
		{"-p a port twice", InterceptOptions{PortMaps: []string{"3000:http", "3001:http"}, Timeout: 1}, "Service port http is given twice"},
		{"-p a local port twice", InterceptOptions{PortMaps: []string{"3000:http", "3000:grpc"}, Timeout: 1}, "local port 3000 is given twice"},
		{"-p and -r", InterceptOptions{PortMaps: []string{"3000:http"}, RemotePort: "grpc", Timeout: 1}, "not both"},
		{"-p and -l", InterceptOptions{PortMaps: []string{"3000:http"}, LocalPort: 3001, Timeout: 1}, "not both"},
		{"-p twice and a preview", InterceptOptions{PortMaps: []string{"3000:http", "3001:grpc"}, Preview: "local", Timeout: 1}, "take one port"},
		{"a command", InterceptOptions{LocalPort: 3000, Timeout: 1, Command: []string{"true"}}, ""},
		{"a command that does not exist", InterceptOptions{LocalPort: 3000, Timeout: 1, Command: []string{"no-such-command-here"}}, "no-such-command-here: command not found"},
		{"a command in the background", InterceptOptions{LocalPort: 3000, Timeout: 1, Detach: true, Command: []string{"true"}}, "leave out --detach"},
		{"forwards", InterceptOptions{LocalPort: 3000, Timeout: 1, Forwards: []string{"5432:postgres.db:5432", "redis:6379", "[fd00::1]:80"}}, ""},
		{"a forward without a port", InterceptOptions{LocalPort: 3000, Timeout: 1, Forwards: []string{"postgres.db"}}, "want [LOCAL_PORT:]HOST:PORT"},
		{"a forward with a bad local port", InterceptOptions{LocalPort: 3000, Timeout: 1, Forwards: []string{"99999:db:5432"}}, "want [LOCAL_PORT:]HOST:PORT"},
	} {
		err := tc.o.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestCloseValidate(t *testing.T) {
	if err := (&CloseOptions{Timeout: 1}).Validate(nil); err != nil {
		t.Errorf("close without an argument (this machine's intercepts): %v", err)
	}
	if err := (&CloseOptions{All: true, Timeout: 1}).Validate([]string{"svc/x"}); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("close with both a Service and --all: %v", err)
	}
}

// The root command carries kubectl's standard flags and our own.
func TestRootFlags(t *testing.T) {
	var out bytes.Buffer
	cmd := NewCmdRoot(genericiooptions.IOStreams{Out: &out, ErrOut: &out})
	for _, f := range []string{"namespace", "context", "kubeconfig", "as", "remote-port", "local-port", "header", "cookie", "baggage", "all", "clean", "quiet", "wait", "detach", "dry-run", "proxy-image", "timeout"} {
		if cmd.Flags().Lookup(f) == nil && cmd.PersistentFlags().Lookup(f) == nil {
			t.Errorf("flag --%s missing", f)
		}
	}
	if got := cmd.Flags().Lookup("header").DefValue; got != route.DefaultHeaderName+":"+route.DefaultHeaderValue {
		t.Errorf("default header %q", got)
	}
}

func TestDescribeRoutes(t *testing.T) {
	got := describeRoutes([]route.Route{{Header: "X-Dev", Value: "a", Owner: "alice@l"}, {All: true}})
	if got != "X-Dev:a by alice@l, all traffic" {
		t.Errorf("got %q", got)
	}
}

// With none of -x, --cookie, --baggage and --all the default header marks
// the developer's requests; each flag gives its kind of route.
func TestMatchRoute(t *testing.T) {
	for _, tc := range []struct {
		o    InterceptOptions
		want route.Route
	}{
		{InterceptOptions{}, route.Route{Header: route.DefaultHeaderName, Value: route.DefaultHeaderValue}},
		{InterceptOptions{Header: "x-dev: alice"}, route.Route{Header: "x-dev", Value: "alice"}},
		{InterceptOptions{Cookie: "dev=alice"}, route.Route{Cookie: "dev", Value: "alice"}},
		{InterceptOptions{Baggage: "dev=alice%20smith"}, route.Route{Baggage: "dev", Value: "alice smith"}},
		{InterceptOptions{All: true}, route.Route{All: true}},
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
		o := &InterceptOptions{Namespace: "shop", Service: "web", LocalPort: 3000, Route: tc.route}
		tunnels := []portTunnel{{entry: st.Record.Ports()[0], local: 3000}}
		o.printActive(newProgress(&out, &out, false), st, tunnels, "web-copy-1", &front{inspectURL: "http://127.0.0.1:4041/"})
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

// czctl's spellings: -k for --kubeconfig, --remotePort and --localPort;
// and --force only with -c.
func TestCzctlFlags(t *testing.T) {
	var out bytes.Buffer
	cmd := NewCmdRoot(genericiooptions.IOStreams{Out: &out, ErrOut: &out})
	if err := cmd.ParseFlags([]string{"-k", "/tmp/kc", "--remotePort", "http", "--localPort", "3000", "-n", "shop"}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"kubeconfig": "/tmp/kc", "remote-port": "http", "local-port": "3000", "namespace": "shop"} {
		if got := cmd.Flags().Lookup(name).Value.String(); got != want {
			t.Errorf("--%s = %q, want %q", name, got, want)
		}
	}
	o := InterceptOptions{LocalPort: 3000, Timeout: 1, Force: true}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--force goes with -c") {
		t.Errorf("--force without -c: %v", err)
	}
}

// Help reads right: no flag's usage turns words into a value name, and
// nothing promises more than the restore does.
func TestHelpReadsRight(t *testing.T) {
	root := NewCmdRoot(genericiooptions.IOStreams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}})
	for _, cmd := range append(root.Commands(), root) {
		var out bytes.Buffer
		cmd.SetOut(&out)
		if err := cmd.Help(); err != nil {
			t.Fatal(err)
		}
		help := out.String()
		for _, bad := range []string{"--detach kubectl", "exactly as it was", "(the default)"} {
			if strings.Contains(help, bad) {
				t.Errorf("%s --help says %q", cmd.Name(), bad)
			}
		}
	}
}

// This machine's record of its intercepts: written, listed by context,
// forgotten; a file that does not read as a record is skipped.
func TestLocalIntercepts(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	a := localIntercept{Context: "dev", Namespace: "shop", Service: "web", Session: "abc123", PID: 1, Started: goldenNow}
	b := localIntercept{Context: "dev", Namespace: "team", Service: "api", Session: "def456", PID: 2, Started: goldenNow.Add(time.Second)}
	c := localIntercept{Context: "prod", Namespace: "shop", Service: "web", Session: "ghi789", PID: 3, Started: goldenNow}
	for _, li := range []localIntercept{b, a, c} {
		if err := rememberLocal(li.key(), li); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(stateDir(), "junk.json"), []byte(`{"context":"dev","namespace":"../x","service":"a"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := localIntercepts("dev")
	if err != nil || len(got) != 2 || got[0] != a || got[1] != b {
		t.Fatalf("got %+v, %v", got, err)
	}
	forgetLocal(a.key())
	if got, _ := localIntercepts("dev"); len(got) != 1 || got[0] != b {
		t.Fatalf("after forgetting: %+v", got)
	}
}

// An owner name from a sidecar reaches the terminal only made safe.
func TestRoutesPrintedSafely(t *testing.T) {
	got := describeRoutes([]route.Route{{Header: "X-Dev", Value: "a", Owner: "eve\x1b]0;pwned\x07@b"}})
	if strings.ContainsAny(got, "\x1b\x07") || !strings.Contains(got, `\x1b`) {
		t.Errorf("printed %q", got)
	}
}

func TestParseForward(t *testing.T) {
	for in, want := range map[string]forwardSpec{
		"5432:postgres.db:5432":  {Local: 5432, Target: "postgres.db:5432"},
		"15432:postgres.db:5432": {Local: 15432, Target: "postgres.db:5432"},
		"redis.cache:6379":       {Local: 6379, Target: "redis.cache:6379"},
		"8080:[fd00::1]:80":      {Local: 8080, Target: "[fd00::1]:80"},
		"10.96.0.5:80":           {Local: 80, Target: "10.96.0.5:80"},
	} {
		got, err := parseForward(in)
		if err != nil || got != want {
			t.Errorf("%s: %+v, %v; want %+v", in, got, err, want)
		}
	}
}

// The command gets this machine's environment with the pod's over it and
// the proxy's last; a command's exit code is the plugin's.
func TestCommandEnvAndExitCode(t *testing.T) {
	env := commandEnv([]string{"PATH=/usr/bin", "HOME=/home/dev", "LOG_LEVEL=warn"},
		[]podenv.Var{{Name: "LOG_LEVEL", Value: "debug"}, {Name: "DSN", Value: "a=b"}}, "127.0.0.1:1080")
	got := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = v
	}
	for k, v := range map[string]string{"PATH": "/usr/bin", "LOG_LEVEL": "debug", "DSN": "a=b", "HTTP_PROXY": "http://127.0.0.1:1080",
		"https_proxy": "http://127.0.0.1:1080", "ALL_PROXY": "socks5h://127.0.0.1:1080", "NO_PROXY": "localhost,127.0.0.1,::1"} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	lc, err := startCommand([]string{"sh", "-c", "exit 3"}, nil, nil, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	<-lc.done
	if code := ExitCode(lc.result()); code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
	if err := lookCommand([]string{"no-such-command-here"}); ExitCode(err) != 127 {
		t.Errorf("a missing command: %v (code %d), want 127", err, ExitCode(err))
	}
}
