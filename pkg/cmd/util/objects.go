package util

import (
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// What `list` and `status` print with -o json, yaml, name or a template
// are these objects of intercept.kubectl.dev/v1alpha1, the way kubectl
// prints a Pod: apiVersion and kind first, the Service's name and
// namespace under metadata, lists with their items. A script reads
// .metadata.name, .status.phase or .items[*] and keeps working when the
// table changes; a change of this shape is a new version.

// GroupVersion is the apiVersion of what list and status print.
var GroupVersion = schema.GroupVersion{Group: "intercept.kubectl.dev", Version: "v1alpha1"}

// Scheme knows the printed kinds, so kubectl's printers can set apiVersion
// and kind on an object that lacks them.
var Scheme = newScheme()

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	s.AddKnownTypes(GroupVersion, &Intercept{}, &InterceptList{}, &Candidate{}, &CandidateList{})
	return s
}

// Intercept is one intercept of a Service: its name is the Service's.
type Intercept struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              InterceptSpec   `json:"spec"`
	Status            InterceptStatus `json:"status"`
}

// InterceptSpec is what the intercept was started on.
type InterceptSpec struct {
	// Ports are the Service ports it intercepts.
	Ports []string `json:"ports"`
	// Workload is the original the copy was made of.
	Workload WorkloadReference `json:"workload"`
	// Copy is the name of the copy's Deployment, or, with mode decoy,
	// of the proxy's.
	Copy string `json:"copy"`
	// Mode is "copy", or "decoy" when a proxy-only Deployment serves the
	// intercept in front of Decoy, a Service with the original's
	// selector, and the original keeps serving.
	Mode  string `json:"mode"`
	Decoy string `json:"decoy,omitempty"`
}

// WorkloadReference names a workload by kind and name.
type WorkloadReference struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

// InterceptStatus is what the cluster, the copy's sidecars and this
// machine say of the intercept now.
type InterceptStatus struct {
	// Phase is active, idle, reverted, copy-missing, residue, broken,
	// unknown or ended.
	Phase string `json:"phase"`
	// Ready is the copy's ready pods out of those it wants: 2/2.
	Ready  string        `json:"ready"`
	Routes []route.Route `json:"routes"`
	// Problem is set when the state could not be read in full.
	Problem string `json:"problem,omitempty"`
	// URL is the Service port's address inside the cluster (status
	// svc/NAME).
	URL string `json:"url,omitempty"`
	// Pods are the copy's pods and the routes each sidecar holds (status
	// svc/NAME).
	Pods []PodStatus `json:"pods,omitempty"`
	// Local is what this machine knows of the intercept: set by status,
	// for the intercepts this machine started.
	Local *LocalStatus `json:"local,omitempty"`
}

// PodStatus is one pod of the copy and the routes its sidecar holds.
type PodStatus struct {
	Name    string        `json:"name"`
	Node    string        `json:"node,omitempty"`
	Ready   bool          `json:"ready"`
	Routes  []route.Route `json:"routes"`
	Problem string        `json:"problem,omitempty"`
}

// LocalStatus is this machine's side of an intercept it started.
type LocalStatus struct {
	// Held says a process of this machine holds it now (PID); false: it
	// was left by a crash, or ended elsewhere.
	Held bool `json:"held"`
	PID  int  `json:"pid,omitempty"`
	// What the intercept gives the local process, when a process holds it.
	Environment string   `json:"environment,omitempty"`
	Files       string   `json:"files,omitempty"`
	Proxy       string   `json:"proxy,omitempty"`
	Forwards    []string `json:"forwards,omitempty"`
	Command     string   `json:"command,omitempty"`
	// Sandbox is what --sandbox gives the command.
	Sandbox *local.SandboxSide `json:"sandbox,omitempty"`
}

// InterceptList is what list prints, and status without an argument with
// the kubeconfig context it looked in.
type InterceptList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata"`
	// Context is where this machine points (status without an argument).
	Context *KubeContext `json:"context,omitempty"`
	Items   []Intercept  `json:"items"`
}

// KubeContext is the kubeconfig context in use, its cluster and user.
type KubeContext struct {
	Name    string `json:"name"`
	Cluster string `json:"cluster"`
	User    string `json:"user"`
}

// Candidate is a Service and whether it can be intercepted (list
// --services); its name is the Service's.
type Candidate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	// Interceptable says some port can be intercepted; Reason says why
	// none can, or what to know.
	Interceptable bool   `json:"interceptable"`
	Reason        string `json:"reason,omitempty"`
	// Workload is what would be copied: deployment/web.
	Workload string `json:"workload,omitempty"`
	// Ports are those an intercept with a header can take; AllOnly those
	// only --all can (no readable HTTP headers).
	Ports   []string `json:"ports"`
	AllOnly []string `json:"allOnly,omitempty"`
}

// CandidateList is what list --services prints.
type CandidateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata"`
	Items           []Candidate `json:"items"`
}

// nonNil is s, or an empty slice for nil: a list prints as [], never null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func typeMeta(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: GroupVersion.String(), Kind: kind}
}

// NewIntercept is the printed form of in.
func NewIntercept(in *session.Intercept) *Intercept {
	ports := in.Ports
	if len(ports) == 0 && in.Port != "" {
		ports = []string{in.Port}
	}
	kind := in.Kind
	if kind == "" && in.Workload != "" {
		kind = workload.KindDeployment
	}
	out := &Intercept{
		TypeMeta: typeMeta("Intercept"),
		ObjectMeta: metav1.ObjectMeta{Name: in.Service, Namespace: in.Namespace,
			CreationTimestamp: metav1.NewTime(in.Created)},
		Spec: InterceptSpec{Ports: nonNil(slices.Clone(ports)),
			Workload: WorkloadReference{Kind: kind, Name: in.Workload}, Copy: in.Copy, Mode: modeOf(in.Mode), Decoy: in.Decoy},
		Status: InterceptStatus{Phase: string(in.Status), Ready: in.Ready,
			Routes: nonNil(slices.Clone(in.Routes)), Problem: in.Problem},
	}
	return out
}

// NewInterceptDetail is the printed form of one intercept in detail, with
// this machine's side of it (nil: none).
func NewInterceptDetail(d *session.Detail, loc *LocalStatus) *Intercept {
	out := NewIntercept(&d.Intercept)
	out.Status.URL = d.URL
	out.Status.Pods = make([]PodStatus, len(d.Pods))
	for i, p := range d.Pods {
		out.Status.Pods[i] = PodStatus{Name: p.Name, Node: p.Node, Ready: p.Ready,
			Routes: nonNil(slices.Clone(p.Routes)), Problem: p.Problem}
	}
	out.Status.Local = loc
	return out
}

// NewLocalStatus is this machine's side of an intercept it started:
// whether process pid holds it and what it gives that process (side, may
// be nil).
func NewLocalStatus(held bool, pid int, side *local.Side) *LocalStatus {
	st := &LocalStatus{Held: held}
	if !held {
		return st
	}
	st.PID = pid
	if side != nil {
		st.Environment, st.Files, st.Proxy, st.Command = side.Environment, side.Files, side.Proxy, side.Command
		st.Forwards = slices.Clone(side.Forwards)
		st.Sandbox = side.Sandbox
	}
	return st
}

// NewInterceptList is the printed form of list's intercepts.
func NewInterceptList(in []session.Intercept) *InterceptList {
	out := &InterceptList{TypeMeta: typeMeta("InterceptList"), Items: make([]Intercept, len(in))}
	for i := range in {
		out.Items[i] = *NewIntercept(&in[i])
	}
	return out
}

// NewCandidateList is the printed form of list --services.
func NewCandidateList(in []session.Candidate) *CandidateList {
	out := &CandidateList{TypeMeta: typeMeta("CandidateList"), Items: make([]Candidate, len(in))}
	for i, c := range in {
		out.Items[i] = Candidate{TypeMeta: typeMeta("Candidate"),
			ObjectMeta:    metav1.ObjectMeta{Name: c.Service, Namespace: c.Namespace},
			Interceptable: c.Interceptable, Reason: c.Reason, Workload: c.Workload,
			Ports: nonNil(slices.Clone(c.Ports)), AllOnly: slices.Clone(c.AllOnly)}
	}
	return out
}

// DeepCopyObject copies i (runtime.Object).
func (i *Intercept) DeepCopyObject() runtime.Object { return i.DeepCopy() }

// DeepCopy copies i.
func (i *Intercept) DeepCopy() *Intercept {
	if i == nil {
		return nil
	}
	out := *i
	out.ObjectMeta = *i.ObjectMeta.DeepCopy()
	out.Spec.Ports = slices.Clone(i.Spec.Ports)
	out.Status.Routes = slices.Clone(i.Status.Routes)
	if i.Status.Pods != nil {
		out.Status.Pods = make([]PodStatus, len(i.Status.Pods))
		for n, p := range i.Status.Pods {
			p.Routes = slices.Clone(p.Routes)
			out.Status.Pods[n] = p
		}
	}
	if l := i.Status.Local; l != nil {
		lc := *l
		lc.Forwards = slices.Clone(l.Forwards)
		out.Status.Local = &lc
	}
	return &out
}

// DeepCopyObject copies l (runtime.Object).
func (l *InterceptList) DeepCopyObject() runtime.Object {
	if l == nil {
		return nil
	}
	out := *l
	l.DeepCopyInto(&out.ListMeta) // ListMeta's
	if l.Context != nil {
		c := *l.Context
		out.Context = &c
	}
	if l.Items != nil {
		out.Items = make([]Intercept, len(l.Items))
		for n := range l.Items {
			out.Items[n] = *l.Items[n].DeepCopy()
		}
	}
	return &out
}

// DeepCopyObject copies c (runtime.Object).
func (c *Candidate) DeepCopyObject() runtime.Object { return c.DeepCopy() }

// DeepCopy copies c.
func (c *Candidate) DeepCopy() *Candidate {
	if c == nil {
		return nil
	}
	out := *c
	out.ObjectMeta = *c.ObjectMeta.DeepCopy()
	out.Ports = slices.Clone(c.Ports)
	out.AllOnly = slices.Clone(c.AllOnly)
	return &out
}

// DeepCopyObject copies l (runtime.Object).
func (l *CandidateList) DeepCopyObject() runtime.Object {
	if l == nil {
		return nil
	}
	out := *l
	l.DeepCopyInto(&out.ListMeta) // ListMeta's
	if l.Items != nil {
		out.Items = make([]Candidate, len(l.Items))
		for n := range l.Items {
			out.Items[n] = *l.Items[n].DeepCopy()
		}
	}
	return &out
}

// modeOf names an intercept's mode; a copy's is recorded empty.
func modeOf(m string) string {
	if m == "" {
		return "copy"
	}
	return m
}
