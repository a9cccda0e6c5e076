package list

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/internal/golden"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

var goldenNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func goldenIntercepts() []session.Intercept {
	// Alice and carol share a header on different paths.
	alice := route.Route{Header: "X-Dev", Value: "alice", PathPrefix: "/api", Owner: "alice@laptop"}
	bob := route.Route{Cookie: "dev", Value: "bob", Owner: "bob@laptop"}
	carol := route.Route{Header: "X-Dev", Value: "alice", PathRegex: "/web/[0-9]+", Methods: "GET,HEAD", Owner: "carol@laptop"}
	return []session.Intercept{
		{Namespace: "shop", Service: "cart", Port: "http", Workload: "cart", Copy: "cart-intercept-b4k9x2", Ready: "2/2",
			Routes: []route.Route{alice, bob, carol}, Created: goldenNow.Add(-90 * time.Minute), Status: session.StateActive},
		{Namespace: "shop", Service: "search", Port: "8080", Workload: "search", Copy: "search-intercept-7hq2zz", Ready: "1/1",
			Routes: []route.Route{}, Created: goldenNow.Add(-3 * time.Hour), Status: session.StateIdle},
		{Namespace: "team", Service: "api", Port: "grpc", Workload: "api", Kind: "StatefulSet", Copy: "api-intercept-x2x2x2", Ready: "0/1",
			Routes: []route.Route{}, Created: goldenNow.Add(-40 * time.Second), Status: session.StateResidue,
			Problem: "a copy without a switched Service"},
	}
}

func goldenCandidates() []session.Candidate {
	return []session.Candidate{
		{Namespace: "shop", Service: "cart", Workload: "deployment/cart", Ports: []string{"http"}, AllOnly: []string{"grpc"}, Interceptable: true},
		{Namespace: "shop", Service: "external", Ports: []string{}, Reason: "an ExternalName Service has no pods to copy"},
	}
}

// list prints what the command with args (its flags) prints for the
// golden intercepts, or with --services the golden candidates: stdout,
// then stderr after a separator.
func list(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	o := newListOptions(nil, genericiooptions.IOStreams{Out: &out, ErrOut: &errOut})
	o.Namespace = "shop"
	cmd := o.command()
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		return "", err
	}
	var err error
	if o.Services {
		err = o.printCandidates(goldenCandidates())
	} else {
		err = o.printIntercepts(goldenIntercepts(), goldenNow)
	}
	if errOut.Len() > 0 {
		out.WriteString("--- stderr\n")
		out.Write(errOut.Bytes())
	}
	return out.String(), err
}

// Every output format of list, for the intercepts and for --services, as
// a person and a script see it.
func TestListGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"list", nil},
		{"list-wide-all-namespaces", []string{"-A", "-o", "wide"}},
		{"list-no-headers", []string{"--no-headers"}},
		{"list-json", []string{"-o", "json"}},
		{"list-yaml", []string{"-o", "yaml"}},
		{"list-name", []string{"-o", "name"}},
		{"list-jsonpath", []string{"-o", `jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} {.status.phase}{"\n"}{end}`}},
		{"list-go-template", []string{"-o", `go-template={{range .items}}{{.metadata.name}}: {{.spec.workload.kind}}/{{.spec.workload.name}}{{"\n"}}{{end}}`}},
		{"list-template-flag", []string{"--template", `{{range .items}}{{.metadata.name}} {{end}}`}},
		{"list-services", []string{"--services"}},
		{"list-services-no-headers", []string{"--services", "--no-headers"}},
		{"list-services-json", []string{"--services", "-o", "json"}},
		{"list-services-name", []string{"--services", "-o", "name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := list(t, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			golden.Assert(t, tc.name, []byte(out))
		})
	}
}

// -o json is a versioned object a script can rely on: apiVersion and kind,
// each intercept named by its Service under metadata.
func TestListJSONIsVersioned(t *testing.T) {
	out, err := list(t, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var l struct {
		APIVersion, Kind string
		Items            []struct {
			APIVersion, Kind string
			Metadata         struct{ Name, Namespace string }
			Spec             struct{ Ports []string }
			Status           struct {
				Phase  string
				Routes []struct{ Header, Value, PathPrefix, PathRegex, Methods, Owner string }
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("%v in:\n%s", err, out)
	}
	if l.APIVersion != "intercept.kubectl.dev/v1alpha1" || l.Kind != "InterceptList" || len(l.Items) != 3 {
		t.Fatalf("list -o json: %s", out)
	}
	cart := l.Items[0]
	if cart.APIVersion != "intercept.kubectl.dev/v1alpha1" || cart.Kind != "Intercept" || cart.Metadata.Name != "cart" ||
		cart.Metadata.Namespace != "shop" || cart.Status.Phase != "active" || len(cart.Status.Routes) != 3 || cart.Spec.Ports[0] != "http" {
		t.Fatalf("list -o json, first item: %+v", cart)
	}
	// What narrows a route is in its fields, as the flags spell it.
	if r := cart.Status.Routes[0]; r.PathPrefix != "/api" {
		t.Errorf("list -o json: alice's route %+v, want pathPrefix /api", r)
	}
	if r := cart.Status.Routes[2]; r.PathRegex != "/web/[0-9]+" || r.Methods != "GET,HEAD" {
		t.Errorf("list -o json: carol's route %+v, want pathRegex /web/[0-9]+ and methods GET,HEAD", r)
	}
}

// Every format -o's help names works, each file form with a file.
func TestListEveryFormatTheHelpNames(t *testing.T) {
	for _, services := range []bool{false, true} {
		for _, format := range formatsInHelp(t) {
			args := formatArgs(t, format)
			want := "cart"
			if services {
				args = append(args, "--services")
			}
			out, err := list(t, args...)
			if err != nil {
				t.Errorf("list %v: %v", args, err)
				continue
			}
			if !strings.Contains(out, want) {
				t.Errorf("list %v does not name %s:\n%s", args, want, out)
			}
		}
	}
}

// formatsInHelp reads the formats list --help names for -o.
func formatsInHelp(t *testing.T) []string {
	t.Helper()
	var out bytes.Buffer
	cmd := newListOptions(nil, genericiooptions.IOStreams{Out: &out, ErrOut: &out}).command()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--help"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`-o, --output string +output format: one of ([^(]+) \(default: the table\)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("--help names no formats for -o:\n%s", out.String())
	}
	formats := strings.Split(m[1], ", ")
	for _, want := range []string{"wide", "json", "yaml", "name", "go-template", "jsonpath"} {
		if !strings.Contains(m[1], want) {
			t.Errorf("--help does not name -o %s: %s", want, m[1])
		}
	}
	return formats
}

// formatArgs is -o format with what it needs: a template, in a file for
// the file forms.
func formatArgs(t *testing.T, format string) []string {
	t.Helper()
	var tmpl string
	switch {
	case strings.HasPrefix(format, "jsonpath"):
		tmpl = `{.items[0].metadata.name}`
	case strings.Contains(format, "template"):
		tmpl = `{{(index .items 0).metadata.name}}`
	default:
		return []string{"-o", format}
	}
	if strings.HasSuffix(format, "file") {
		path := filepath.Join(t.TempDir(), "template")
		if err := os.WriteFile(path, []byte(tmpl), 0o600); err != nil {
			t.Fatal(err)
		}
		tmpl = path
	}
	return []string{"-o", format + "=" + tmpl}
}

// An unknown format is refused before anything is read, with the formats
// there are; so is a template that does not parse.
func TestListUnknownFormat(t *testing.T) {
	_, err := list(t, "-o", "xml")
	if err == nil {
		t.Fatal("-o xml was accepted")
	}
	for _, want := range []string{`"xml"`, "wide", "json", "yaml", "name", "go-template", "jsonpath", "no -o for the table"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %s: %v", want, err)
		}
	}
	if _, err := list(t, "-o", "jsonpath={.items[0"); err == nil || !strings.Contains(err.Error(), "-o jsonpath=") {
		t.Errorf("an unclosed jsonpath: %v", err)
	}
}

// What a crafted record puts in list's fields reaches the terminal
// quoted, in the table and through a template.
func TestListCraftedValuesAreQuoted(t *testing.T) {
	esc := "\x1b]8;;http://evil/\x07click\x1b]8;;\x07"
	in := []session.Intercept{{Namespace: "shop", Service: "cart", Port: "http\rfake", Workload: "cart" + esc, Copy: "cart-intercept\n  forged",
		Ready: "2/2", Routes: []route.Route{{Header: "X-Dev", Value: "a\x1b[2Jb", Owner: "eve" + esc}}, Created: goldenNow, Status: session.StateActive,
		Problem: "\x1b[31mall fine\x1b[0m"}}
	for _, args := range [][]string{{"-o", "wide"}, {"-o", `go-template={{range .items}}{{.spec.workload.name}} {{.spec.copy}} {{.status.problem}}{{end}}`},
		{"-o", `jsonpath={.items[*].status.routes[*].value}`}} {
		var out, errOut bytes.Buffer
		o := newListOptions(nil, genericiooptions.IOStreams{Out: &out, ErrOut: &errOut})
		if err := o.command().ParseFlags(args); err != nil {
			t.Fatal(err)
		}
		if err := o.printIntercepts(in, goldenNow); err != nil {
			t.Fatal(err)
		}
		if bytes.ContainsAny(out.Bytes(), "\x1b\x07\r") || strings.Contains(out.String(), "\n  forged") {
			t.Errorf("list %v let a control character through:\n%q", args, out.String())
		}
	}
}
