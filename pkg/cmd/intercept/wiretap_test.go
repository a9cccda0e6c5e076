package intercept

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/factory"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// --wiretap makes the route a copy, narrowed like any other; --record and
// --ignore go with it; what cannot carry its copies is refused before
// anything changes, and Validate changes nothing.
func TestWiretapValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    *Options
		want string
	}{
		{"a wiretap", opts(func(o *Options) { o.Wiretap = true }), ""},
		{"recorded, with ignores", opts(func(o *Options) {
			o.Wiretap, o.Record, o.Ignore = true, "/tmp/pairs.jsonl", []string{"$..updatedAt", "header:X-Request-Id"}
		}), ""},
		{"--record alone", opts(func(o *Options) { o.Record = "pairs.jsonl" }), "go with --wiretap"},
		{"--ignore alone", opts(func(o *Options) { o.Ignore = []string{"$.a"} }), "go with --wiretap"},
		{"an ignore that is no path", opts(func(o *Options) { o.Wiretap, o.Ignore = true, []string{"items.id"} }), `--ignore "items.id"`},
		{"through ngrok", opts(func(o *Options) { o.Wiretap, o.Tunnel, o.NgrokAuthtoken = true, local.TunnelNgrok, "t" }), "built-in tunnel"},
		{"with nothing to show", opts(func(o *Options) { o.Wiretap, o.Inspect = true, local.InspectOff }), "shows nothing"},
		{"two ports", opts(func(o *Options) { o.Wiretap, o.PortMaps = true, []string{"3000:http", "3001:grpc"} }), "one port"},
	} {
		if len(tc.o.PortMaps) == 0 {
			tc.o.LocalPort = 3000
		}
		tc.o.Timeout = 1
		before := *tc.o
		err := tc.o.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
		if !reflect.DeepEqual(before, *tc.o) {
			t.Errorf("%s: Validate changed the options", tc.name)
		}
	}
	r, err := opts(func(o *Options) { o.Wiretap, o.Header, o.PathPrefix = true, "x-dev:alice", "/api/" }).wiretapRoute()
	if want := (route.Route{Header: "x-dev", Value: "alice", PathPrefix: "/api/", Wiretap: true}); err != nil || r != want {
		t.Fatalf("route %#v, %v; want %#v", r, err, want)
	}
}

// The flags as typed: a mistake ends the command before the cluster is
// asked.
func TestWiretapFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"svc/web", "-l", "3000", "--record", "pairs.jsonl"}, "go with --wiretap"},
		{[]string{"svc/web", "-l", "3000", "--wiretap", "--ignore", "$[x]"}, "--ignore"},
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
}
