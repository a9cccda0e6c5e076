package intercept

import (
	"bytes"
	"strings"
	"testing"

	cmdutil "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/util"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/factory"
)

// --sandbox and --local are refused, with what to do, when they cannot work.
func TestValidateSandbox(t *testing.T) {
	base := func(o *Options) { o.LocalPort = 3000; o.Timeout = 1 }
	for _, tc := range []struct {
		name string
		set  func(*Options)
		want string
	}{
		{"a command in the sandbox", func(o *Options) { o.Sandbox = true; o.Command = []string{"true"} }, ""},
		{"the sandbox without a command", func(o *Options) { o.Sandbox = true }, "--sandbox runs your command in the sandbox: give it after --"},
		{"--local without the sandbox", func(o *Options) { o.Locals = []string{"localhost:5432"}; o.Command = []string{"true"} }, "it goes with --sandbox"},
		{"--local forms", func(o *Options) {
			o.Sandbox, o.Command = true, []string{"true"}
			o.Locals = []string{"localhost:5432", "192.168.1.0/24", "db.lan:5432", "[fd00::/8]:5432", "10.0.0.7"}
		}, ""},
		{"a bad --local", func(o *Options) { o.Sandbox, o.Command, o.Locals = true, []string{"true"}, []string{"db.lan:http"} }, "want HOST, IP, CIDR"},
		{"--local on the -l port", func(o *Options) { o.Sandbox, o.Command, o.Locals = true, []string{"true"}, []string{"127.0.0.1:3000"} }, "port 3000 is the -l port"},
		{"--local on a -p port", func(o *Options) {
			o.LocalPort = 0
			o.PortMaps = []string{"3000:http", "3001:grpc"}
			o.Sandbox, o.Command, o.Locals = true, []string{"true"}, []string{"localhost:3001"}
		}, "port 3001 is the -l port"},
		{"--local localhost without a port", func(o *Options) { o.Sandbox, o.Command, o.Locals = true, []string{"true"}, []string{"localhost"} }, "this machine's loopback needs a port"},
		{"another machine on the -l port's number", func(o *Options) { o.Sandbox, o.Command, o.Locals = true, []string{"true"}, []string{"db.lan:3000"} }, ""},
		{"a dry run of the sandbox", func(o *Options) { o.DryRun, o.Sandbox, o.Command = true, true, []string{"true"} }, ""},
		{"a dry run of a command without the sandbox", func(o *Options) { o.DryRun, o.Command = true, []string{"true"} }, "leave out -- CMD"},
		{"--sandbox-cover without the sandbox", func(o *Options) { o.Cover, o.Command = []string{"/etc/app.conf"}, []string{"true"} }, "--sandbox-cover lets a volume"},
		{"--sandbox-cover paths", func(o *Options) {
			o.Sandbox, o.Command, o.Cover = true, []string{"true"}, []string{"/etc/app.conf", "/usr/local/etc/app"}
		}, ""},
		{"a relative --sandbox-cover", func(o *Options) { o.Sandbox, o.Command, o.Cover = true, []string{"true"}, []string{"etc/app.conf"} }, `--sandbox-cover "etc/app.conf": give the volume's mountPath`},
		{"an unclean --sandbox-cover", func(o *Options) { o.Sandbox, o.Command, o.Cover = true, []string{"true"}, []string{"/etc/app/"} }, "without a trailing slash"},
		{"--sandbox-cover with ..", func(o *Options) { o.Sandbox, o.Command, o.Cover = true, []string{"true"}, []string{"/etc/../bin/sh"} }, "--sandbox-cover"},
		{"--sandbox-cover /", func(o *Options) { o.Sandbox, o.Command, o.Cover = true, []string{"true"}, []string{"/"} }, "--sandbox-cover"},
		{"the sandbox in the background", func(o *Options) { o.Detach, o.Sandbox, o.Command = true, true, []string{"true"} }, "leave out --detach"},
	} {
		o := opts(base, tc.set)
		err := o.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}

// --sandbox and --local are flags of the command, documented with an
// example.
func TestSandboxFlags(t *testing.T) {
	streams, _, _, _ := genericiooptions.NewTestIOStreams()
	cmd := NewCmdIntercept(factory.NewFor(fake.NewClientset(), nil, "default"), streams)
	for _, name := range []string{"sandbox", "local", "sandbox-cover"} {
		if cmd.Flags().Lookup(name) == nil {
			t.Errorf("--%s is not registered", name)
		}
	}
	if !strings.Contains(cmd.Example, "--sandbox --local localhost:5432 -- ./my-service") {
		t.Errorf("the examples lack --sandbox:\n%s", cmd.Example)
	}
}

// The active message says what the sandbox gives: DNS, network, files at
// their paths, local exceptions.
func TestPrintSandbox(t *testing.T) {
	var out bytes.Buffer
	sb := &local.SandboxSide{Hostname: "web-intercept-1", DNS: "nameserver 10.96.0.10, search shop.svc.cluster.local svc.cluster.local cluster.local, options ndots:5",
		Network: "every TCP connection leaves from pod web-intercept-1", Mounts: []string{"/etc/config", "/var/run/secrets/token"}, Local: []string{"localhost:5432"},
		Skipped:   []string{"the volume at /etc/hostname is not in the sandbox: that file exists on this machine: ...; to mount the volume over it anyway, --sandbox-cover /etc/hostname", "the volume at /x\x1b]0;t\x07 is not in the sandbox: ..."},
		HiddenEnv: []string{"SSH_AUTH_SOCK", "DISPLAY"}}
	printSandbox(cmdutil.NewProgress(&out, &out, false), []string{"./web", "--debug"}, sb)
	for _, want := range []string{
		"Sandbox: ./web --debug runs as you in namespaces of its own, hostname web-intercept-1",
		"DNS: nameserver 10.96.0.10, search shop.svc.cluster.local",
		"Network: every TCP connection leaves from pod web-intercept-1",
		"Files: 2 mounts at their paths, read-only and kept up to date: /etc/config, /var/run/secrets/token",
		"Local: localhost:5432 (dialed from this machine, not the pod)",
		"    the volume at /etc/hostname is not in the sandbox: that file exists on this machine: ...; to mount the volume over it anyway, --sandbox-cover /etc/hostname\n",
		"Environment: this machine's SSH_AUTH_SOCK, DISPLAY left out",
		"--env-allow NAME",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the sandbox's lines lack %q:\n%s", want, out.String())
		}
	}
	if strings.ContainsAny(out.String(), "\x1b\x07") {
		t.Errorf("a skipped mountPath is printed raw: %q", out.String())
	}
	out.Reset()
	printSandbox(cmdutil.NewProgress(&out, &out, false), []string{"./web"}, nil)
	if out.Len() != 0 {
		t.Errorf("without --sandbox: %q", out.String())
	}
}

// --dry-run --sandbox says what the sandbox would give, escaping what the
// command line holds.
func TestPrintSandboxDryRun(t *testing.T) {
	var out bytes.Buffer
	printSandboxDryRun(&out, []string{"./web", "\x1b]0;x\x07"}, []string{"localhost:5432", "10.0.0.0/8"})
	s := out.String()
	for _, want := range []string{"# sandbox: this machine can run it; \"./web ", "every TCP connection and DNS query leaves from a copy pod", "at their mountPaths",
		"# sandbox: dialed from this machine instead: localhost:5432, 10.0.0.0/8"} {
		if !strings.Contains(s, want) {
			t.Errorf("the dry run lacks %q:\n%s", want, s)
		}
	}
	if strings.ContainsAny(s, "\x1b\x07") {
		t.Errorf("the dry run prints the command raw: %q", s)
	}
}
