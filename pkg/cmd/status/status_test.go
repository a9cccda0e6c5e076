package status

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/internal/golden"
	cmdutil "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/util"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// statusCluster is a namespace with svc/shop intercepted (switched) or only
// its copy left (residue), two copy pods and one original pod.
func statusCluster(switched bool) (*fake.Clientset, *session.Record) {
	rec := &session.Record{Version: 1, ID: "abc123", Service: "shop", Workload: "shop", Copy: "shop-intercept-abc123",
		Port: "http", Selector: map[string]string{"app": "shop"},
		Plan:    workload.PortPlan{AppPort: 8080, SidecarPort: 18080, ControlPort: 18081},
		Created: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	s := svc("team", "shop", corev1.ServicePort{Name: "http", Port: 80})
	s.Spec.Selector = map[string]string{"app": "shop"}
	if switched {
		s.Spec.Selector = rec.SessionSelector()
		s.Annotations = map[string]string{session.AnnotationRecord: rec.Encode()}
	}
	copyDeploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: rec.Copy, UID: "copy-uid",
			Labels:      map[string]string{session.LabelManagedBy: session.ManagedByValue, session.LabelSession: rec.ID},
			Annotations: map[string]string{session.AnnotationRecord: rec.Encode()}},
		Spec:   appsv1.DeploymentSpec{Replicas: ptr.To[int32](2)},
		Status: appsv1.DeploymentStatus{ReadyReplicas: 2},
	}
	// The copy's pods are the copy's by their owner chain: a ReplicaSet
	// the copy Deployment controls.
	copyRS := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: rec.Copy + "-5d8f", UID: "rs-uid",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: rec.Copy, UID: "copy-uid", Controller: ptr.To(true)}}}}
	pod := func(name string, labels map[string]string, ready bool) *corev1.Pod {
		cond := corev1.ConditionFalse
		if ready {
			cond = corev1.ConditionTrue
		}
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: name, Labels: labels},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1",
				Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: cond}},
				ContainerStatuses: []corev1.ContainerStatus{{Name: workload.SidecarName, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}}
		if labels[session.LabelSession] != "" {
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: copyRS.Name, UID: "rs-uid", Controller: ptr.To(true)}}
		}
		return p
	}
	copyLabels := map[string]string{"app": "shop", session.LabelSession: rec.ID}
	return fake.NewClientset(s, copyDeploy, copyRS,
		pod("shop-intercept-abc123-b", copyLabels, true),
		pod("shop-intercept-abc123-a", copyLabels, true),
		pod("shop-7d9f-x", map[string]string{"app": "shop"}, true),
	), rec
}

// routeList is a sidecar's route table that holds fixed routes.
type routeList []route.Route

func (l routeList) Add(route.Route, tunnel.DialFunc) (func(), error) {
	return nil, tunnel.ErrConflict
}

func (l routeList) List() []route.Route { return l }

// sidecars dials, for each pod named in routes, a sidecar's tunnel server
// that holds those routes; other pods refuse the connection.
func sidecars(routes map[string][]route.Route) session.PodDialer {
	return func(ctx context.Context, _, pod string, _ int) (io.ReadWriteCloser, error) {
		r, ok := routes[pod]
		if !ok {
			return nil, errors.New("connection refused")
		}
		a, b := net.Pipe()
		srv := &tunnel.Server{Pod: pod, Routes: routeList(r)}
		go srv.ServeConn(ctx, b)
		return a, nil
	}
}

func statusOptions(cs *fake.Clientset, routes map[string][]route.Route, args ...string) (*StatusOptions, *bytes.Buffer) {
	var out bytes.Buffer
	o := newStatusOptions(nil, genericiooptions.IOStreams{Out: &out, ErrOut: &out})
	if err := o.command().ParseFlags(args); err != nil {
		panic(err)
	}
	o.Namespace, o.Service, o.Cluster = "team", "shop", session.Cluster{Client: cs, Dial: sidecars(routes)}
	return o, &out
}

// status shows, pod by pod, which routes the copy's sidecars hold, so a
// pod that lacks a developer's route stands out, with what it means.
func TestStatusShowsRoutesPodByPod(t *testing.T) {
	cs, _ := statusCluster(true)
	alice := route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop"}
	bob := route.Route{Cookie: "dev", Value: "bob", Owner: "bob@laptop"}
	o, out := statusOptions(cs, map[string][]route.Route{
		"shop-intercept-abc123-a": {alice, bob},
		"shop-intercept-abc123-b": {alice},
	})
	st, err := o.Cluster.Get(context.Background(), o.Namespace, o.Service)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeStatus(out, st, st.Created.Add(90*time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Service:   team/shop, port http",
		"Status:    active",
		"Workload:  deployment/shop, copied as deployment/shop-intercept-abc123 (2/2 ready)",
		"Started:   90s ago",
		"X-Dev:alice by alice@laptop, on 2 of 2 ready pods",
		"cookie dev=bob by bob@laptop, on 1 of 2 ready pods",
		"shop-intercept-abc123-a   true    X-Dev:alice, cookie dev=bob",
		"shop-intercept-abc123-b   true    X-Dev:alice ",
		"Try it from inside the cluster: curl -H 'X-Dev: alice' http://shop.team:80/",
		"Try it from inside the cluster: curl -H 'Cookie: dev=bob' http://shop.team:80/",
		"Pod shop-intercept-abc123-b lacks a route",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "shop-7d9f-x") {
		t.Errorf("a pod of the original is listed:\n%s", out.String())
	}
}

// A sidecar that does not answer is named with the reason, in text and in
// -o json, and the other pods are still shown.
func TestStatusSidecarNotAnswering(t *testing.T) {
	cs, _ := statusCluster(true)
	o, out := statusOptions(cs, map[string][]route.Route{
		"shop-intercept-abc123-a": {{Header: "X-Dev", Value: "alice"}},
	}, "-o", "json")
	if err := o.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var st cmdutil.Intercept
	if err := json.Unmarshal(out.Bytes(), &st); err != nil {
		t.Fatalf("%v in:\n%s", err, out.String())
	}
	if st.Kind != "Intercept" || st.Name != "shop" || len(st.Status.Pods) != 2 || st.Status.Pods[0].Name != "shop-intercept-abc123-a" || len(st.Status.Pods[0].Routes) != 1 {
		t.Fatalf("unexpected status: %+v", st)
	}
	if p := st.Status.Pods[1]; !strings.Contains(p.Problem, "sidecar did not answer: connection refused") {
		t.Errorf("pod b's problem: %q", p.Problem)
	}
}

// A copy left without a switched Service (a crash, our annotations wiped)
// is shown as residue with the command that cleans it up; a Service with no
// intercept at all is an error that says where to look.
func TestStatusResidueAndNotIntercepted(t *testing.T) {
	cs, _ := statusCluster(false)
	o, out := statusOptions(cs, nil)
	if err := o.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Status:    residue", "a copy without a switched Service",
		"`kubectl intercept close svc/shop -n team` restores the Service and removes the copy"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in:\n%s", want, out.String())
		}
	}

	cs = fake.NewClientset(svc("team", "shop", corev1.ServicePort{Name: "http", Port: 80}))
	o, _ = statusOptions(cs, nil)
	err := o.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "service team/shop is not intercepted: `kubectl intercept list`") {
		t.Fatalf("got %v", err)
	}
	o.Service = "nope"
	if err := o.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "service team/nope not found") {
		t.Fatalf("got %v", err)
	}
}

// What a crafted record, a crafted sidecar or a crafted cluster object
// puts in status's fields reaches the terminal quoted, never as escape
// sequences or line breaks: the record's workload and copy (an
// annotation), a pod's problem (a sidecar's error), a route's owner and
// value, the overview's problem (a remote error). The curl hint is left
// out for a route that cannot be pasted.
func TestStatusGoldenCrafted(t *testing.T) {
	esc := "\x1b]8;;http://evil/\x07click\x1b]8;;\x07"
	crafted := route.Route{Header: "X-Dev", Value: "a\x1b[2Jb", Owner: "eve" + esc + "@laptop"}
	in := session.Intercept{Namespace: "shop", Service: "cart", Port: "http\rfake", Workload: "cart" + esc, Copy: "cart-intercept-b4k9x2\n  Routes: none",
		Ready: "2/2", Routes: []route.Route{crafted}, Created: goldenNow.Add(-90 * time.Minute), Status: session.StateActive,
		Problem: "sidecar says \x1b[31mall fine\x1b[0m"}
	d := &session.Detail{Intercept: in, URL: "http://cart.shop:80/", Pods: []session.PodState{
		{Name: "cart-intercept-b4k9x2-5d8f-abcde", Ready: true, Routes: []route.Route{crafted}},
		{Name: "cart-intercept-b4k9x2-5d8f-fghij", Ready: true, Routes: []route.Route{}, Problem: "sidecar did not answer: \x1b[8mhidden\xff"},
	}}
	var out bytes.Buffer
	if err := writeStatus(&out, d, goldenNow); err != nil {
		t.Fatal(err)
	}
	out.WriteString("--- overview\n")
	ov := &Overview{Context: "dev", Cluster: "https://127.0.0.1:6443", User: "me\x07", Intercepts: []MineIntercept{
		{Intercept: session.Intercept{Namespace: "shop", Service: "cart", Status: session.StateUnknown, Routes: []route.Route{crafted},
			Problem: "listing pods: \x1b[1A\x1b[2Kforged line"}},
	}}
	if err := writeOverview(&out, ov); err != nil {
		t.Fatal(err)
	}
	if bytes.ContainsAny(out.Bytes(), "\x1b\x07\r\xff") {
		t.Errorf("a control character reached the terminal:\n%q", out.String())
	}
	golden.Assert(t, "status-crafted", out.Bytes())
}

var goldenNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func goldenIntercepts() []session.Intercept {
	alice := route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop"}
	bob := route.Route{Cookie: "dev", Value: "bob", Owner: "bob@laptop"}
	return []session.Intercept{
		{Namespace: "shop", Service: "cart", Port: "http", Workload: "cart", Copy: "cart-intercept-b4k9x2", Ready: "2/2",
			Routes: []route.Route{alice, bob}, Created: goldenNow.Add(-90 * time.Minute), Status: session.StateActive},
		{Namespace: "shop", Service: "search", Port: "8080", Workload: "search", Copy: "search-intercept-7hq2zz", Ready: "1/1",
			Routes: []route.Route{}, Created: goldenNow.Add(-3 * time.Hour), Status: session.StateIdle},
		{Namespace: "team", Service: "api", Port: "grpc", Workload: "api", Kind: "StatefulSet", Copy: "api-intercept-x2x2x2", Ready: "0/1",
			Routes: []route.Route{}, Created: goldenNow.Add(-40 * time.Second), Status: session.StateResidue,
			Problem: "a copy without a switched Service"},
	}
}

func TestStatusGolden(t *testing.T) {
	in := goldenIntercepts()
	active := &session.Detail{Intercept: in[0], URL: "http://cart.shop:80/", Pods: []session.PodState{
		{Name: "cart-intercept-b4k9x2-5d8f-abcde", Node: "node-1", Ready: true, Routes: in[0].Routes},
		{Name: "cart-intercept-b4k9x2-5d8f-fghij", Node: "node-2", Ready: true, Routes: in[0].Routes[:1]},
		{Name: "cart-intercept-b4k9x2-5d8f-klmno", Node: "node-2", Ready: false, Routes: []route.Route{}, Problem: "sidecar did not answer: connection refused"},
	}}
	residue := &session.Detail{Intercept: in[2], Pods: []session.PodState{}}
	for name, d := range map[string]*session.Detail{"status-active": active, "status-residue": residue} {
		var out bytes.Buffer
		if err := writeStatus(&out, d, goldenNow); err != nil {
			t.Fatal(err)
		}
		golden.Assert(t, name, out.Bytes())
	}
}

func svc(ns, name string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{Ports: ports}}
}

// goldenDetail is an active intercept held by this machine (pid 4242) and
// goldenOverview this machine's intercepts in context dev.
func goldenDetail() (*session.Detail, *local.Intercept) {
	in := goldenIntercepts()
	d := &session.Detail{Intercept: in[0], URL: "http://cart.shop:80/", Pods: []session.PodState{
		{Name: "cart-intercept-b4k9x2-5d8f-abcde", Node: "node-1", Ready: true, Routes: in[0].Routes},
		{Name: "cart-intercept-b4k9x2-5d8f-klmno", Node: "node-2", Ready: false, Routes: []route.Route{}, Problem: "sidecar did not answer: connection refused"},
	}}
	li := &local.Intercept{Namespace: "shop", Service: "cart", PID: 4242,
		Local: &local.Side{Environment: "cart.env", Forwards: []string{"localhost:5432 -> postgres.shop:5432"}, Command: "npm start"}}
	return d, li
}

func goldenOverview() *Overview {
	in := goldenIntercepts()
	return &Overview{Context: "dev", Cluster: "https://127.0.0.1:6443", User: "me", Intercepts: []MineIntercept{
		{Intercept: in[0], Held: true, PID: 4242}, {Intercept: in[2]}}}
}

// status prints the golden detail (or with overview, the golden
// overview) as the command with args prints it.
func status(t *testing.T, overview bool, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	o := newStatusOptions(nil, genericiooptions.IOStreams{Out: &out, ErrOut: &out})
	if err := o.command().ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		return "", err
	}
	var err error
	if overview {
		err = o.printOverview(goldenOverview())
	} else {
		d, li := goldenDetail()
		err = o.printDetail(d, li, goldenNow)
	}
	return out.String(), err
}

// Every output format of status, for one intercept and for the overview.
func TestStatusFormatsGolden(t *testing.T) {
	for _, tc := range []struct {
		name     string
		overview bool
		args     []string
	}{
		{"status-detail", false, nil},
		{"status-detail-json", false, []string{"-o", "json"}},
		{"status-detail-yaml", false, []string{"-o", "yaml"}},
		{"status-detail-name", false, []string{"-o", "name"}},
		{"status-detail-jsonpath", false, []string{"-o", `jsonpath={range .status.pods[*]}{.name} {.ready} {.problem}{"\n"}{end}`}},
		{"status-detail-go-template", false, []string{"-o", `go-template={{.metadata.name}} {{.status.phase}} held by pid {{.status.local.pid}}{{"\n"}}`}},
		{"status-overview", true, nil},
		{"status-overview-json", true, []string{"-o", "json"}},
		{"status-overview-yaml", true, []string{"-o", "yaml"}},
		{"status-overview-name", true, []string{"-o", "name"}},
		{"status-overview-jsonpath", true, []string{"-o", `jsonpath={.context.name}: {range .items[*]}{.metadata.name}={.status.local.held} {end}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := status(t, tc.overview, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			golden.Assert(t, tc.name, []byte(out))
		})
	}
}

// -o json of one intercept and of the overview are versioned objects: a
// script finds the Service under metadata and this machine's side under
// status.local.
func TestStatusJSONIsVersioned(t *testing.T) {
	out, err := status(t, false, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var st cmdutil.Intercept
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if st.APIVersion != "intercept.kubectl.dev/v1alpha1" || st.Kind != "Intercept" || st.Name != "cart" || st.Status.Phase != "active" ||
		st.Status.URL != "http://cart.shop:80/" || len(st.Status.Pods) != 2 || st.Status.Local == nil || st.Status.Local.PID != 4242 ||
		st.Status.Local.Command != "npm start" {
		t.Fatalf("status -o json:\n%s", out)
	}
	out, err = status(t, true, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var ov cmdutil.InterceptList
	if err := json.Unmarshal([]byte(out), &ov); err != nil {
		t.Fatal(err)
	}
	if ov.Kind != "InterceptList" || ov.Context == nil || ov.Context.Name != "dev" || len(ov.Items) != 2 ||
		!ov.Items[0].Status.Local.Held || ov.Items[1].Status.Local.Held || ov.Items[1].Status.Phase != "residue" {
		t.Fatalf("status -o json without an argument:\n%s", out)
	}
}

// Every format -o's help names works, for one intercept and the overview.
func TestStatusEveryFormatTheHelpNames(t *testing.T) {
	var help bytes.Buffer
	cmd := newStatusOptions(nil, genericiooptions.IOStreams{Out: &help, ErrOut: &help}).command()
	cmd.SetOut(&help)
	cmd.SetArgs([]string{"--help"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`-o, --output string +output format: one of ([^(]+) \(default: the text\)`).FindStringSubmatch(help.String())
	if m == nil {
		t.Fatalf("--help names no formats for -o:\n%s", help.String())
	}
	formats := strings.Split(m[1], ", ")
	if len(formats) < 6 || slices.Contains(formats, "wide") {
		t.Fatalf("status -o names %v", formats)
	}
	for _, overview := range []bool{false, true} {
		for _, format := range formats {
			args := []string{"-o", format}
			tmpl := ""
			switch {
			case strings.HasPrefix(format, "jsonpath"):
				tmpl = `{.metadata.name}{.items[0].metadata.name}`
			case strings.Contains(format, "template"):
				tmpl = `{{if .items}}{{(index .items 0).metadata.name}}{{else}}{{.metadata.name}}{{end}}`
			}
			if strings.HasSuffix(format, "file") {
				path := filepath.Join(t.TempDir(), "template")
				if err := os.WriteFile(path, []byte(tmpl), 0o600); err != nil {
					t.Fatal(err)
				}
				tmpl = path
			}
			if tmpl != "" {
				args = []string{"-o", format + "=" + tmpl}
			}
			out, err := status(t, overview, args...)
			if err != nil {
				t.Errorf("status %v: %v", args, err)
				continue
			}
			if !strings.Contains(out, "cart") {
				t.Errorf("status %v does not name cart:\n%s", args, out)
			}
		}
	}
}

// An unknown format is refused with the formats there are; status has no
// table, so no wide.
func TestStatusUnknownFormat(t *testing.T) {
	for _, format := range []string{"xml", "wide"} {
		_, err := status(t, false, "-o", format)
		if err == nil {
			t.Fatalf("-o %s was accepted", format)
		}
		for _, want := range []string{`"` + format + `"`, "json", "yaml", "name", "go-template", "jsonpath", "no -o for the text"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("the error does not name %s: %v", want, err)
			}
		}
	}
}
