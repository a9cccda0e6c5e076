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

	"github.com/kubectl-intercept/kubectl-intercept/pkg/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/tunnel"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/workload"
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
	Kind    string        `json:"kind,omitempty"`
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

// LiveRoutes asks a reachable sidecar of the session which routes are
// live: the truth about who still intercepts, since a route lives only
// with its tunnel.
func (c Cluster) LiveRoutes(ctx context.Context, ns string, rec *Record) ([]route.Route, error) {
	return c.liveRoutes(ctx, ns, rec, "")
}

func (c Cluster) liveRoutes(ctx context.Context, ns string, rec *Record, key string) ([]route.Route, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pods, err := CopyPods(ctx, c.Client, ns, rec)
	if err != nil {
		return nil, err
	}
	last := errors.New("no running pod of the copy")
	for i := range pods {
		if !Reachable(&pods[i]) {
			continue
		}
		routes, err := c.sidecarRoutes(ctx, ns, pods[i].Name, rec, key)
		if err == nil {
			return routes, nil
		}
		last = err
	}
	return nil, last
}

// OthersLive returns the live routes that are not those of owner key
// (empty: every live route). A route whose developer just crashed can
// outlive them by one heartbeat timeout, so when there are others it asks
// again once that has passed: what is left then is really live. Which
// routes are the caller's own the sidecar says by the key: a route that
// merely looks like the caller's (a teammate holds the same header) is
// another's.
func (c Cluster) OthersLive(ctx context.Context, ns string, rec *Record, key string) ([]route.Route, error) {
	var others []route.Route
	for attempt := 0; attempt < 2; attempt++ {
		routes, err := c.liveRoutes(ctx, ns, rec, key)
		if err != nil {
			return nil, err
		}
		others = othersOf(routes)
		if len(others) == 0 || attempt == 1 {
			break
		}
		select {
		case <-ctx.Done():
			return others, nil
		case <-time.After(tunnel.KeepAliveInterval + tunnel.KeepAliveTimeout + time.Second):
		}
	}
	return others, nil
}

// othersOf is the routes that are not the asking CLI's own.
func othersOf(routes []route.Route) []route.Route {
	var out []route.Route
	for _, r := range routes {
		if !r.Mine {
			out = append(out, r)
		}
	}
	return out
}

// Copies lists our copies in ns (every namespace if empty) whose record
// can be read, oldest first.
func Copies(ctx context.Context, cs kubernetes.Interface, ns string) ([]appsv1.Deployment, error) {
	return findCopies(ctx, cs, ns, "")
}

// RecordOf reads the record a copy carries.
func RecordOf(d *appsv1.Deployment) (*Record, error) {
	return DecodeRecord(d.Annotations[AnnotationRecord])
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
		if _, ok := s.Annotations[AnnotationRecord]; !ok {
			continue
		}
		switched[s.Namespace+"/"+s.Name] = true
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
		pods, err := c.podStates(ctx, ns, rec)
		if err != nil {
			return nil, err
		}
		d.Pods = pods
		return unionRoutes(pods)
	}
	if _, ok := svc.Annotations[AnnotationRecord]; ok {
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

// podStates lists the copy's pods with the routes each sidecar holds.
func (c Cluster) podStates(ctx context.Context, ns string, rec *Record) ([]PodState, error) {
	pods, err := CopyPods(ctx, c.Client, ns, rec)
	if err != nil {
		return nil, err
	}
	out := []PodState{}
	for i := range pods {
		p := &pods[i]
		ps := PodState{Name: p.Name, Node: p.Spec.NodeName, Ready: PodReady(p), Routes: []route.Route{}}
		switch {
		case p.DeletionTimestamp != nil:
			ps.Problem = "terminating"
		case p.Status.Phase != corev1.PodRunning:
			ps.Problem = "not running (" + string(p.Status.Phase) + ")"
		default:
			routes, err := c.SidecarRoutes(ctx, ns, p.Name, rec)
			if err != nil {
				ps.Problem = "sidecar did not answer: " + firstLine(err.Error())
			} else if routes != nil {
				ps.Routes = routes
			}
		}
		out = append(out, ps)
	}
	return out, nil
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
	rec, err := DecodeRecord(s.Annotations[AnnotationRecord])
	if err != nil {
		e.Status, e.Problem = StateBroken, err.Error()
		return e
	}
	e.Record = rec
	e.Port, e.Ports, e.Workload, e.Kind, e.Copy, e.Created = rec.Port, rec.PortKeys(), rec.Workload, kindOf(rec), rec.Copy, rec.Created
	d, err := cs.AppsV1().Deployments(s.Namespace).Get(ctx, rec.Copy, metav1.GetOptions{})
	if err != nil {
		e.Ready, e.Status = "-", StateCopyMissing
		return e
	}
	e.Ready = fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, ptr.Deref(d.Spec.Replicas, 0))
	live, err := routes(ctx, rec)
	switch {
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

// LeaveOptions are the inputs of Leave.
type LeaveOptions struct {
	Namespace, Service string
	// ID limits the close to one session (a developer leaving the session
	// they joined); empty: whatever session the Service has.
	ID string
	// Key is the leaving developer's owner key: their own route, which a
	// sidecar may not have seen drop yet, is not another's. Empty when the
	// caller holds none.
	Key string
	// Force restores the Service even while others' routes are live.
	Force    bool
	Timeout  time.Duration
	Progress Progress
}

// Left says what Leave did.
type Left struct {
	// Others are the live routes of other developers that kept the
	// Service switched; Closed is nil then.
	Others []route.Route
	Closed *Closed
}

// Leave is the last-one-out rule, in one place: the Service is restored
// and the copy deleted only when no other developer's route is live (or
// with Force).
func (c Cluster) Leave(ctx context.Context, o LeaveOptions) (*Left, error) {
	if !o.Force {
		if rec := c.currentRecord(ctx, o.Namespace, o.Service, o.ID); rec != nil {
			others, err := c.OthersLive(ctx, o.Namespace, rec, o.Key)
			if err == nil && len(others) > 0 {
				return &Left{Others: others}, nil
			}
		}
	}
	// Asked again once the copy is claimed: a developer who registered and
	// settled between the check above and the claim keeps the session.
	var others []route.Route
	stay := func(ctx context.Context, rec *Record) bool {
		routes, err := c.liveRoutes(ctx, o.Namespace, rec, o.Key)
		if err != nil {
			return false
		}
		others = othersOf(routes)
		return len(others) > 0
	}
	if o.Force {
		stay = nil
	}
	closed, err := Close(ctx, c.Client, CloseOptions{Namespace: o.Namespace, Service: o.Service, ID: o.ID,
		Timeout: o.Timeout, Force: o.Force, Progress: o.Progress, StayIf: stay})
	if err == nil && closed.Stayed {
		return &Left{Others: others}, nil
	}
	return &Left{Closed: closed}, err
}

// currentRecord reads the session record on the Service, else on a copy
// of it (the Service's annotations wiped); nil when there is none.
func (c Cluster) currentRecord(ctx context.Context, ns, name, id string) *Record {
	svc, err := c.Client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err == nil {
		if rec, err := DecodeRecord(svc.Annotations[AnnotationRecord]); err == nil && (id == "" || rec.ID == id) {
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
