// Package session is the intercept as the cluster holds it: the record kept
// in annotations on the Service (and on the copy, in case someone wipes the
// Service's), the switch of the Service to the copy and back, and the start
// and close sequences over a kubernetes.Interface.
package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
)

// Keys of the labels and annotations kubectl-intercept writes. Nothing else
// of ours lands on objects we did not create.
const (
	// AnnotationRecord holds the session record (JSON) on the Service while
	// it is intercepted, and on the copy Deployment for its whole life.
	AnnotationRecord = "intercept.kubectl.dev/record"
	// LegacyAnnotationRecord is where releases up to 0.1 kept the record:
	// the same string as LabelSession, with another meaning. It is still
	// read, so their intercepts are listed and closed, and never written.
	LegacyAnnotationRecord = "intercept.kubectl.dev/session"
	// LabelSession marks the copy and its pods with the session ID; on its
	// own it is the intercepted Service's selector.
	LabelSession = "intercept.kubectl.dev/session"
	// LabelManagedBy marks objects we created.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is LabelManagedBy's value.
	ManagedByValue = "kubectl-intercept"
	// FieldManager names our writes in the objects' managedFields, so a
	// revert by someone else can be told apart and named.
	FieldManager = "kubectl-intercept"
)

// RecordVersion is the version of the record's format.
const RecordVersion = 1

// Record is what must be known to restore the Service and find what we made.
type Record struct {
	Version int    `json:"version"`
	ID      string `json:"id"`
	// Service is the intercepted Service's name.
	Service string `json:"service"`
	// Workload is the original workload's name, Kind its kind (empty in
	// records of versions that copied Deployments only); Copy is the copy
	// Deployment's name.
	Workload string `json:"workload"`
	Kind     string `json:"kind,omitempty"`
	Copy     string `json:"copy"`
	// Port is the intercepted Service port, by name or number.
	Port string `json:"port"`
	// Selector is the Service's selector before the switch.
	Selector map[string]string `json:"selector"`
	// TargetPort is the port's targetPort before the switch; nil when the
	// switch did not change it (a named targetPort the sidecar took over).
	TargetPort *intstr.IntOrString `json:"targetPort,omitempty"`
	Plan       workload.PortPlan   `json:"plan"`
	// More are the further ports of an intercept of several (-p twice):
	// Port, TargetPort and Plan above are the first.
	More    []PortEntry `json:"more,omitempty"`
	Created time.Time   `json:"created"`
	// Mode is how the Service is served while intercepted: empty for a
	// copy of the workload, ModeDecoy for a proxy-only Deployment (Copy
	// names it) in front of the decoy Service Decoy, which keeps the
	// original's selector.
	Mode  Mode   `json:"mode,omitempty"`
	Decoy string `json:"decoy,omitempty"`
}

// Mode says how an intercept serves the Service: a copy of the workload,
// or a proxy in front of a decoy of the Service.
type Mode string

// The modes of StartOptions and Record.
const (
	// ModeAuto (start only): the decoy for StatefulSets and bare Pods,
	// the copy for the rest.
	ModeAuto Mode = ""
	// ModeCopy copies the workload with the sidecar (records leave it out).
	ModeCopy Mode = "copy"
	// ModeDecoy puts a proxy-only Deployment in front of a decoy Service
	// with the original selector: the original keeps serving.
	ModeDecoy Mode = "decoy"
)

// IsDecoy reports whether the session serves the Service through a decoy.
func (r *Record) IsDecoy() bool { return r.Mode == ModeDecoy }

// ModeName is the session's mode as list and status show it: copy or decoy.
func (r *Record) ModeName() string {
	if r.IsDecoy() {
		return string(ModeDecoy)
	}
	return string(ModeCopy)
}

// PortEntry is one intercepted Service port of a session.
type PortEntry struct {
	// Port is the Service port by name or number.
	Port string `json:"port"`
	// TargetPort is its targetPort before the switch; nil when the switch
	// did not change it.
	TargetPort *intstr.IntOrString `json:"targetPort,omitempty"`
	Plan       workload.PortPlan   `json:"plan"`
}

// Ports are the session's intercepted ports, the first one first.
func (r *Record) Ports() []PortEntry {
	return append([]PortEntry{{Port: r.Port, TargetPort: r.TargetPort, Plan: r.Plan}}, r.More...)
}

// PortKeys are the names (or numbers) of the session's ports.
func (r *Record) PortKeys() []string {
	var keys []string
	for _, p := range r.Ports() {
		keys = append(keys, p.Port)
	}
	return keys
}

// setPorts stores the session's ports.
func (r *Record) setPorts(ps []PortEntry) {
	r.Port, r.TargetPort, r.Plan = ps[0].Port, ps[0].TargetPort, ps[0].Plan
	r.More = nil
	if len(ps) > 1 {
		r.More = append([]PortEntry(nil), ps[1:]...)
	}
}

// EntryFor returns the session's entry for a Service port as a developer
// names it (a name or a number; empty: the session's only port).
func (r *Record) EntryFor(svc *corev1.Service, want string) (PortEntry, error) {
	if want == "" {
		if len(r.More) > 0 {
			return PortEntry{}, fmt.Errorf("service %s is intercepted on ports %s: say which with -r, or -p LOCAL:REMOTE for each", r.Service, strings.Join(r.PortKeys(), ", "))
		}
		return r.Ports()[0], nil
	}
	if i := workload.PortIndex(svc, want); i >= 0 {
		if e, ok := r.PortEntryOf(workload.PortKey(&svc.Spec.Ports[i])); ok {
			return e, nil
		}
	}
	return PortEntry{}, fmt.Errorf("service %s is intercepted on port(s) %s, not %s", r.Service, strings.Join(r.PortKeys(), ", "), want)
}

// PortEntryOf returns the session's entry for a Service port key.
func (r *Record) PortEntryOf(key string) (PortEntry, bool) {
	for _, p := range r.Ports() {
		if p.Port == key {
			return p, true
		}
	}
	return PortEntry{}, false
}

// Encode renders the record for an annotation.
func (r *Record) Encode() string {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err) // a Record always marshals
	}
	return string(b)
}

// RecordAnnotation returns the intercept record's annotation among ann,
// and whether there is one: under AnnotationRecord, or under the key
// releases up to 0.1 wrote.
func RecordAnnotation(ann map[string]string) (string, bool) {
	if raw, ok := ann[AnnotationRecord]; ok {
		return raw, true
	}
	raw, ok := ann[LegacyAnnotationRecord]
	return raw, ok
}

// RecordKey names the annotation that holds the record among ann, for a
// message that tells the person how to remove it by hand.
func RecordKey(ann map[string]string) string {
	if _, ok := ann[AnnotationRecord]; !ok {
		if _, ok := ann[LegacyAnnotationRecord]; ok {
			return LegacyAnnotationRecord
		}
	}
	return AnnotationRecord
}

// RecordFrom decodes the record among an object's annotations.
func RecordFrom(ann map[string]string) (*Record, error) {
	raw, _ := RecordAnnotation(ann)
	return DecodeRecord(raw)
}

// DecodeRecord reads a record from an annotation value. A record that was
// hand-edited or cut short is refused with what is wrong, never half-used:
// the restore must not act on a guess.
func DecodeRecord(s string) (*Record, error) {
	var r Record
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return nil, fmt.Errorf("reading the intercept record (annotation %s): %w", AnnotationRecord, err)
	}
	if r.Version > RecordVersion {
		return nil, fmt.Errorf("the intercept record was written by a newer kubectl-intercept (format %d); upgrade", r.Version)
	}
	if err := r.check(); err != nil {
		return nil, fmt.Errorf("the intercept record (annotation %s) %w", AnnotationRecord, err)
	}
	return &r, nil
}

// check tells whether the record names what a restore needs, in forms the
// API server accepts.
func (r *Record) check() error {
	switch {
	case r.Version < 1:
		return fmt.Errorf("has no format version")
	case !validID(r.ID):
		return fmt.Errorf("has an invalid session id %q", r.ID)
	case len(validation.IsDNS1035Label(r.Service)) > 0:
		return fmt.Errorf("names no valid service (%q)", r.Service)
	case len(validation.IsDNS1123Subdomain(r.Workload)) > 0 || len(validation.IsDNS1123Subdomain(r.Copy)) > 0:
		return fmt.Errorf("names no valid workload and copy (%q, %q)", r.Workload, r.Copy)
	case !knownKind(r.Kind):
		return fmt.Errorf("names an unknown workload kind %q", r.Kind)
	case len(r.Selector) == 0:
		return fmt.Errorf("has no selector to restore")
	case r.Mode != "" && r.Mode != ModeDecoy:
		return fmt.Errorf("names an unknown mode %q", r.Mode)
	case r.IsDecoy() && r.Decoy != workload.DecoyName(r.Service, r.ID):
		// The decoy's name follows from the Service and the session: a
		// record cannot point a close at another Service to delete.
		return fmt.Errorf("names decoy %q, not the session's %q", r.Decoy, workload.DecoyName(r.Service, r.ID))
	case !r.IsDecoy() && r.Decoy != "":
		return fmt.Errorf("names a decoy %q without being a decoy's record", r.Decoy)
	}
	seen := map[string]bool{}
	for _, p := range r.Ports() {
		switch {
		case p.Port == "":
			return fmt.Errorf("names no port")
		case seen[p.Port]:
			return fmt.Errorf("names port %s twice", p.Port)
		case p.Plan.ControlPort < 0 || p.Plan.ControlPort > 65535 || p.Plan.SidecarPort < 0 || p.Plan.SidecarPort > 65535 || p.Plan.PeerPort < 0 || p.Plan.PeerPort > 65535:
			return fmt.Errorf("has invalid sidecar ports for port %s", p.Port)
		}
		seen[p.Port] = true
	}
	for k, v := range r.Selector {
		if len(validation.IsQualifiedName(k)) > 0 || len(validation.IsValidLabelValue(v)) > 0 {
			return fmt.Errorf("has an invalid selector entry %q=%q", k, v)
		}
	}
	return nil
}

func knownKind(k string) bool {
	switch k {
	case "", workload.KindDeployment, workload.KindStatefulSet, workload.KindReplicaSet, workload.KindPod, workload.KindRollout:
		return true
	}
	return false
}

// WorkloadRef names the original as kubectl does: deployment/web.
func (r *Record) WorkloadRef() string { return workload.KindRef(r.Kind, r.Workload) }

// validID tells whether s is a session id as newID makes them.
func validID(s string) bool {
	if len(s) == 0 || len(s) > 16 {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// SessionSelector is the Service's selector while intercepted.
func (r *Record) SessionSelector() map[string]string {
	return map[string]string{LabelSession: r.ID}
}

// errNotOurCopy says a record names a Deployment that is not one of our
// copies: a record that does not check out is reported, never used.
var errNotOurCopy = errors.New("not a copy made by kubectl-intercept")

// verifyCopy checks that the Deployment a record names is the copy of that
// very session: our managed-by label, the session label, and a record of
// its own for the same session and Service. It returns apierrors' NotFound
// when the copy is gone.
func verifyCopy(ctx context.Context, cs kubernetes.Interface, ns string, rec *Record) error {
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, rec.Copy, metav1.GetOptions{})
	if err != nil {
		return err
	}
	own, err := RecordOf(d)
	switch {
	case d.Labels[LabelManagedBy] != ManagedByValue || d.Labels[LabelSession] != rec.ID:
		return fmt.Errorf("the intercept record of service %s names deployment %s, which lacks the labels %s=%s and %s=%s: %w",
			rec.Service, rec.Copy, LabelManagedBy, ManagedByValue, LabelSession, rec.ID, errNotOurCopy)
	case err != nil || own.ID != rec.ID || own.Service != rec.Service || own.Copy != d.Name:
		return fmt.Errorf("the intercept record of service %s names deployment %s, whose own record is not the same session's: %w",
			rec.Service, rec.Copy, errNotOurCopy)
	}
	return nil
}
