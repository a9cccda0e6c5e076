package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// What an intercept is and whether it is live, read from the cluster: the
// record on the Service (or on the copy, when the Service's was wiped), the
// copy Deployment, its pods, and the routes their sidecars hold. Commands
// print what these return; none of them reads intercept state itself.

// PodDialer opens a byte stream to port on a pod's loopback (a
// pods/portforward connection).
type PodDialer func(ctx context.Context, namespace, pod string, port int) (io.ReadWriteCloser, error)

// Cluster is where intercept state is read: the API, and a way to ask a
// copy pod's sidecar (only it knows which routes are live).
type Cluster struct {
	Client kubernetes.Interface
	// Dynamic reads Argo Rollouts; nil: they are refused.
	Dynamic dynamic.Interface
	Dial    PodDialer
}

// State is an intercept's state as `list` and `status` show it.
type State string

// The states of an intercept.
const (
	// StateActive: live routes, the Service points at the copy.
	StateActive State = "active"
	// StateIdle: no live route; a stale session to close.
	StateIdle State = "idle"
	// StateReverted: someone switched the Service away from the copy.
	StateReverted State = "reverted"
	// StateCopyMissing: the Service is switched, its copy is gone.
	StateCopyMissing State = "copy-missing"
	// StateResidue: a copy without a switched Service.
	StateResidue State = "residue"
	// StateBroken: the record on the Service cannot be read.
	StateBroken State = "broken"
	// StateUnknown: no sidecar answered.
	StateUnknown State = "unknown"
	// StateDecoyChanged: the decoy of a decoy intercept is gone, or is not
	// the one the transform makes (replaced or edited).
	StateDecoyChanged State = "decoy-changed"
)

// Intercept is one intercepted Service.
type Intercept struct {
	Namespace string `json:"namespace"`
	Service   string `json:"service"`
	// Port is the intercepted Service port (the first, when several are:
	// Ports lists them all).
	Port     string   `json:"port"`
	Ports    []string `json:"ports,omitempty"`
	Workload string   `json:"workload"`
	// Kind is the original's kind: Deployment, StatefulSet, ReplicaSet,
	// Pod or Rollout.
	Kind string `json:"kind,omitempty"`
	// Mode is "decoy" when a proxy in front of a decoy Service serves the
	// intercept (Copy names the proxy Deployment, Decoy the decoy); empty
	// for a copy of the workload.
	Mode    string        `json:"mode,omitempty"`
	Decoy   string        `json:"decoy,omitempty"`
	Copy    string        `json:"copy"`
	Ready   string        `json:"ready"`
	Routes  []route.Route `json:"routes"`
	Created time.Time     `json:"created"`
	Status  State         `json:"status"`
	// Problem is set when the state could not be read in full.
	Problem string `json:"problem,omitempty"`

	// Record is the session's record; nil when it cannot be read.
	Record *Record `json:"-"`
}

// Live reports whether the intercept has live routes and the Service
// still points at the copy.
func (i *Intercept) Live() bool { return i.Status == StateActive }

// Detail is one intercept with what each pod of its copy holds.
type Detail struct {
	Intercept `json:",inline"`
	// URL is the Service port's address inside the cluster.
	URL  string     `json:"url,omitempty"`
	Pods []PodState `json:"pods"`
}

// PodState is one pod of the copy and the routes its sidecar holds.
type PodState struct {
	Name    string        `json:"name"`
	Node    string        `json:"node,omitempty"`
	Ready   bool          `json:"ready"`
	Routes  []route.Route `json:"routes"`
	Problem string        `json:"problem,omitempty"`
}

// ErrNotIntercepted says a Service has no intercept and no residue.
var ErrNotIntercepted = errors.New("not intercepted")

// SidecarRoutes asks one pod's sidecar for the routes it holds.
func (c Cluster) SidecarRoutes(ctx context.Context, ns, pod string, rec *Record) ([]route.Route, error) {
	return c.sidecarRoutes(ctx, ns, pod, rec, "")
}

// sidecarRoutes asks with an owner key: the routes of that key are marked
// Mine.
// Each port of the session has routes of its own: in an intercept of
// several ports, every route is tagged with its port.
func (c Cluster) sidecarRoutes(ctx context.Context, ns, pod string, rec *Record, key string) ([]route.Route, error) {
	ports := rec.Ports()
	var all []route.Route
	for _, e := range ports {
		routes, err := c.portRoutes(ctx, ns, pod, int(e.Plan.ControlPort), key)
		if err != nil {
			return nil, err
		}
		for _, r := range routes {
			if len(ports) > 1 {
				r.Port = e.Port
			}
			all = append(all, r)
		}
	}
	return all, nil
}

func (c Cluster) portRoutes(ctx context.Context, ns, pod string, control int, key string) ([]route.Route, error) {
	conn, err := c.Dial(ctx, ns, pod, control)
	if err != nil {
		return nil, err
	}
	cl, err := tunnel.NewClient(conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	defer cl.Close()
	return cl.RoutesOf(key)
}

// Copies lists our copies in ns (every namespace if empty) whose record
// can be read, oldest first.
func Copies(ctx context.Context, cs kubernetes.Interface, ns string) ([]appsv1.Deployment, error) {
	return findCopies(ctx, cs, ns, "")
}

// RecordOf reads the record a copy carries.
func RecordOf(d *appsv1.Deployment) (*Record, error) {
	return RecordFrom(d.Annotations)
}

// RoutesFunc returns the live routes of a session.
type RoutesFunc func(ctx context.Context, rec *Record) ([]route.Route, error)

// List returns every intercept in ns (every namespace if empty): the
// switched Services, and copies whose Service is not switched (residue).
func (c Cluster) List(ctx context.Context, ns string) ([]Intercept, error) {
	svcs, err := c.Client.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, describeAPIError(err, "listing services")
	}
	out := []Intercept{}
	switched := map[string]bool{}
	for i := range svcs.Items {
		s := &svcs.Items[i]
		if _, ok := RecordAnnotation(s.Annotations); !ok {
			continue
		}
		switched[s.Namespace+"/"+s.Name] = true
		// The same union of every pod's routes as status shows.
		out = append(out, switchedIntercept(ctx, c.Client, s, func(ctx context.Context, rec *Record) ([]route.Route, error) {
			return c.LiveRoutes(ctx, s.Namespace, rec)
		}))
	}
	copies, err := Copies(ctx, c.Client, ns)
	if err != nil {
		return nil, err
	}
	for i := range copies {
		d := &copies[i]
		rec, _ := RecordOf(d)
		if !switched[d.Namespace+"/"+rec.Service] {
			out = append(out, residueIntercept(d, rec))
		}
	}
	return out, nil
}

// Get returns the intercept of one Service with what each pod of its copy
// holds; ErrNotIntercepted when there is neither a switch nor a copy.
func (c Cluster) Get(ctx context.Context, ns, name string) (*Detail, error) {
	svc, err := c.Client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("service %s/%s not found: `kubectl get svc -n %s` lists the Services of the namespace", ns, name, ns)
	}
	if err != nil {
		return nil, describeAPIError(err, "reading service "+ns+"/"+name)
	}
	d := &Detail{Pods: []PodState{}}
	// Every pod's sidecar is asked; the intercept's routes are all they hold.
	collect := func(ctx context.Context, rec *Record) ([]route.Route, error) {
		pods, _, err := c.podStates(ctx, ns, rec, "")
		if err != nil {
			return nil, err
		}
		d.Pods = pods
		return unionRoutes(pods)
	}
	if _, ok := RecordAnnotation(svc.Annotations); ok {
		d.Intercept = switchedIntercept(ctx, c.Client, svc, collect)
	} else {
		// Not switched: the residue of a crash, or our annotations wiped.
		copies, err := findCopies(ctx, c.Client, ns, name)
		if err != nil {
			return nil, err
		}
		if len(copies) == 0 {
			return nil, fmt.Errorf("service %s/%s is %w: `kubectl intercept list` shows the intercepts of the namespace", ns, name, ErrNotIntercepted)
		}
		last := &copies[len(copies)-1]
		rec, _ := RecordOf(last)
		d.Intercept = residueIntercept(last, rec)
		if _, err := collect(ctx, rec); err != nil && len(d.Pods) == 0 {
			d.Problem += "; " + err.Error()
		}
	}
	if i := workload.PortIndex(svc, d.Port); i >= 0 {
		d.URL = fmt.Sprintf("http://%s.%s:%d/", svc.Name, svc.Namespace, svc.Spec.Ports[i].Port)
	}
	return d, nil
}

// LiveRoutes is every route some sidecar of the session's copy holds (the
// union over its pods, as status shows them); an error when no sidecar
// answered. A route lives only with its tunnel.
func (c Cluster) LiveRoutes(ctx context.Context, ns string, rec *Record) ([]route.Route, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pods, _, err := c.podStates(ctx, ns, rec, "")
	if err != nil {
		return nil, err
	}
	return unionRoutes(pods)
}

// podStates lists the copy's pods with the routes each sidecar holds (the
// routes of the owner key given as key marked Mine), and which pods run a sidecar that
// could not be asked.
func (c Cluster) podStates(ctx context.Context, ns string, rec *Record, key string) ([]PodState, []string, error) {
	pods, err := CopyPods(ctx, c.Client, ns, rec)
	if err != nil {
		return nil, nil, err
	}
	out := []PodState{}
	var unasked []string
	for i := range pods {
		p := &pods[i]
		ps := PodState{Name: p.Name, Node: p.Spec.NodeName, Ready: PodReady(p), Routes: []route.Route{}}
		switch {
		case p.DeletionTimestamp != nil:
			ps.Problem = "terminating"
		case p.Status.Phase != corev1.PodRunning:
			ps.Problem = "not running (" + string(p.Status.Phase) + ")"
		default:
			routes, err := c.sidecarRoutes(ctx, ns, p.Name, rec, key)
			if err != nil {
				ps.Problem = "sidecar did not answer: " + firstLine(err.Error())
				// A sidecar that runs may hold routes; one that does not
				// (not started, crashed) holds none.
				if Reachable(p) {
					unasked = append(unasked, "the sidecar of pod "+p.Name+" could not be asked: "+firstLine(err.Error()))
				}
			} else if routes != nil {
				ps.Routes = routes
			}
		}
		out = append(out, ps)
	}
	return out, unasked, nil
}

// unionRoutes is every route some pod holds, in the order first seen; an
// error when no sidecar answered.
func unionRoutes(pods []PodState) ([]route.Route, error) {
	var out []route.Route
	answered := false
	last := "no running pod of the copy"
	for _, p := range pods {
		if p.Problem != "" {
			last = p.Name + ": " + p.Problem
			continue
		}
		answered = true
		for _, r := range p.Routes {
			if !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	if !answered {
		return nil, errors.New(last)
	}
	return out, nil
}

// switchedIntercept describes a Service that carries a session record,
// asking routes for the live routes.
func switchedIntercept(ctx context.Context, cs kubernetes.Interface, s *corev1.Service, routes RoutesFunc) Intercept {
	e := Intercept{Namespace: s.Namespace, Service: s.Name, Routes: []route.Route{}}
	rec, err := RecordFrom(s.Annotations)
	if err != nil {
		e.Status, e.Problem = StateBroken, err.Error()
		return e
	}
	e.Record = rec
	e.Port, e.Ports, e.Workload, e.Kind, e.Copy, e.Created = rec.Port, rec.PortKeys(), rec.Workload, kindOf(rec), rec.Copy, rec.Created
	e.Mode, e.Decoy = string(rec.Mode), rec.Decoy
	d, err := cs.AppsV1().Deployments(s.Namespace).Get(ctx, rec.Copy, metav1.GetOptions{})
	if err != nil {
		e.Ready, e.Status = "-", StateCopyMissing
		return e
	}
	e.Ready = fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, ptr.Deref(d.Spec.Replicas, 0))
	live, err := routes(ctx, rec)
	decoyProblem := decoyState(ctx, cs, s.Namespace, rec)
	switch {
	case decoyProblem != "":
		e.Status, e.Problem = StateDecoyChanged, decoyProblem
	case err != nil:
		e.Status, e.Problem = StateUnknown, firstLine(err.Error())
	case !maps.Equal(s.Spec.Selector, rec.SessionSelector()):
		e.Status, e.Problem = StateReverted, RevertMessage(s)
	case len(live) == 0:
		e.Status = StateIdle
	default:
		e.Status = StateActive
	}
	if live != nil {
		e.Routes = live
	}
	return e
}

// residueIntercept describes a copy whose Service is not switched (a
// crash between creating the copy and the switch, or our annotations wiped).
func residueIntercept(d *appsv1.Deployment, rec *Record) Intercept {
	return Intercept{Namespace: d.Namespace, Service: rec.Service, Port: rec.Port, Ports: rec.PortKeys(), Workload: rec.Workload,
		Kind: kindOf(rec), Copy: d.Name, Ready: fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, ptr.Deref(d.Spec.Replicas, 0)),
		Mode: string(rec.Mode), Decoy: rec.Decoy,
		Routes: []route.Route{}, Created: rec.Created, Status: StateResidue,
		Problem: "a copy without a switched Service", Record: rec}
}

// kindOf is the original's kind a record names; records from before other
// kinds were copied name Deployments.
func kindOf(rec *Record) string {
	if rec.Kind == "" {
		return workload.KindDeployment
	}
	return rec.Kind
}

// PortList is the intercepted ports for a table: http,grpc.
func (e *Intercept) PortList() string {
	if len(e.Ports) > 1 {
		return strings.Join(e.Ports, ",")
	}
	return e.Port
}

// WorkloadRef names the original as kubectl does: statefulset/db.
func (e *Intercept) WorkloadRef() string {
	if e.Workload == "" {
		return ""
	}
	return workload.KindRef(e.Kind, e.Workload)
}

// firstLine is the first line of a message, for a table cell.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// currentRecord reads the session record on the Service, else on a copy
// of it (the Service's annotations wiped); nil when there is none.
func (c Cluster) currentRecord(ctx context.Context, ns, name, id string) *Record {
	svc, err := c.Client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err == nil {
		if rec, err := RecordFrom(svc.Annotations); err == nil && (id == "" || rec.ID == id) {
			return rec
		}
	}
	copies, err := findCopies(ctx, c.Client, ns, name)
	if err != nil {
		return nil
	}
	for i := len(copies) - 1; i >= 0; i-- {
		if rec, err := RecordOf(&copies[i]); err == nil && (id == "" || rec.ID == id) {
			return rec
		}
	}
	return nil
}
