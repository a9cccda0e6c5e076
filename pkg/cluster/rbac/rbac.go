// Package rbac is what an administrator installs so that developers may
// intercept in a namespace and do nothing more: the Role, its binding to a
// group, and the ValidatingAdmissionPolicies that confine the members of
// that group to what kubectl-intercept does with the Role. The documents in
// docs/ are these objects rendered for the defaults, and `kubectl intercept
// rbac` renders them for a namespace and a group, so the two cannot differ.
package rbac

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/version"
)

// DefaultGroup is the group the documents in docs/ bind the Role to and
// confine with the admission policy.
const DefaultGroup = session.PolicyGroup

// RoleName is the name of the Role.
const RoleName = "kubectl-intercept"

// Options say for whom the objects are rendered.
type Options struct {
	// Namespace of the Role and its binding; empty: none is written (the
	// documents in docs/, applied with kubectl apply -n).
	Namespace string
	// Group is bound to the Role and confined by the policy.
	Group string
	// ProxyImage is the one sidecar image a copy may carry, exactly.
	ProxyImage string
}

// Defaults are the options docs/ is rendered with: no namespace, the
// default group and this build's sidecar image.
func Defaults() Options {
	return Options{Group: DefaultGroup, ProxyImage: version.ProxyImage()}
}

// Validate says what is wrong with the options, for the person who gave them.
func (o Options) Validate() error {
	if o.Namespace != "" {
		if errs := validation.IsDNS1123Label(o.Namespace); len(errs) > 0 {
			return fmt.Errorf("namespace %q: %s", o.Namespace, strings.Join(errs, "; "))
		}
	}
	if strings.TrimSpace(o.Group) == "" {
		return errors.New("name the group of developers with --group (the Role is bound to it and the admission policy confines its members)")
	}
	for _, c := range o.Group {
		if !unicode.IsPrint(c) {
			return fmt.Errorf("group %q holds a character that is not printable", o.Group)
		}
	}
	if o.ProxyImage == "" || strings.ContainsFunc(o.ProxyImage, func(c rune) bool {
		return unicode.IsSpace(c) || !unicode.IsPrint(c) || c == '\'' || c == '"' || c == '\\'
	}) {
		return fmt.Errorf("--proxy-image %q is not an image reference (REPOSITORY:TAG or REPOSITORY@sha256:DIGEST)", o.ProxyImage)
	}
	return nil
}

// suffix tells the objects of one group from another's: the policies are
// cluster-wide, so the policy of a second group must not replace the
// first's. Empty for the default group.
func (o Options) suffix() string {
	if o.Group == DefaultGroup {
		return ""
	}
	label := strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			return c
		case c >= 'A' && c <= 'Z':
			return c - 'A' + 'a'
		}
		return '-'
	}, o.Group)
	label = strings.Trim(label, "-")
	if len(label) > 40 {
		label = strings.Trim(label[:40], "-")
	}
	if label != o.Group || label == "" {
		// Another spelling could sanitize to the same label: the hash
		// keeps their names apart.
		sum := sha256.Sum256([]byte(o.Group))
		label = strings.TrimPrefix(label+"-"+hex.EncodeToString(sum[:4]), "-")
	}
	return "-" + label
}

// name is an object's name for this group.
func (o Options) name(base string) string { return base + o.suffix() }

// rule is a rule of the Role and why the plugin needs it.
type rule struct {
	why  string
	rule rbacv1.PolicyRule
}

func r(why string, groups, resources, verbs []string) rule {
	return rule{why: why, rule: rbacv1.PolicyRule{APIGroups: groups, Resources: resources, Verbs: verbs}}
}

// rules are the Role's, in the order docs/rbac.yaml lists them.
var rules = []rule{
	r(`Read the Service, switch its selector/targetPort and record the session in
an annotation; watch it for a revert (a GitOps sync); restore it at close.`,
		[]string{""}, []string{"services"}, []string{"get", "list", "watch", "update"}),
	r(`--decoy (the default for StatefulSets and bare Pods): create the decoy, a
ClusterIP Service with the original's selector that the proxy sends what is
not yours to, and delete it at close. The admission policy lets a member
create and delete only decoys: named <service>-decoy-<session>, labeled
ours, a ClusterIP and nothing that reaches outside the cluster.`,
		[]string{""}, []string{"services"}, []string{"create", "delete"}),
	r(`Find the workload behind the Service; follow the copy's pods.`,
		[]string{""}, []string{"pods"}, []string{"get", "list", "watch"}),
	r(`A new pod of the copy (it scaled with the original, or replaced one) takes
traffic only once it holds every developer's route: its readiness gate
intercept.kubectl.dev/routes is set through the status subresource.`,
		[]string{""}, []string{"pods/status"}, []string{"patch"}),
	r(`The tunnel: WebSocket port-forward is authorized as get, the SPDY fallback
as create. Grant both.`,
		[]string{""}, []string{"pods/portforward"}, []string{"get", "create"}),
	r(`ReadWriteOnce check of the workload's claims.`,
		[]string{""}, []string{"persistentvolumeclaims"}, []string{"get"}),
	r(`Read the original (and follow its replica count: an HPA's decisions);
create the copy, scale it with the original, mark it while starting or
closing (two developers arriving and leaving at once), delete it.
Every wait is a watch, so an idle intercept asks the API server nothing.`,
		[]string{"apps"}, []string{"deployments"}, []string{"get", "list", "watch", "create", "update", "delete"}),
	r(``, []string{"apps"}, []string{"replicasets", "statefulsets"}, []string{"get", "list", "watch"}),
	r(`Wait until the Service's endpoints moved to the copy, and back before
deleting it.`,
		[]string{"discovery.k8s.io"}, []string{"endpointslices"}, []string{"list", "watch"}),
	r(`Who is intercepting (presence) and who starts or closes a copy (the claim):
Leases named intercept-..., labeled app.kubernetes.io/managed-by=kubectl-intercept.`,
		[]string{"coordination.k8s.io"}, []string{"leases"}, []string{"get", "list", "watch", "create", "update", "delete"}),
}

// optionalRules is what docs/rbac.yaml says about the rights a few
// features need beyond the Role; rendered as comments.
const optionalRules = `# Optional, for the local side (` + "`-- CMD`" + `, --env-file, --env-json, --mount):
# the container's environment and volumes read the ConfigMaps and Secrets
# it names; --mount watches them to keep the files up to date, and requests
# a token for a projected service account token. Without these the
# intercept works; the env or the files that need them are reported.
# - apiGroups: [""]
#   resources: [configmaps, secrets]
#   verbs: [get, list, watch]
# - apiGroups: [""]
#   resources: [serviceaccounts/token]
#   verbs: [create]
# A resourceFieldRef to a limit the container does not set reads the node's
# allocatable, which needs a ClusterRole (nodes are not namespaced):
#   kubectl create clusterrole kubectl-intercept-nodes --verb=get --resource=nodes
# Optional, for --take-over (the connections callers keep open move to the
# copy: the original is scaled to zero while the intercept lasts, and back
# at close): the scale of the workloads. With it a member may scale any
# Deployment, StatefulSet or ReplicaSet of the namespace, which the
# admission policy cannot tell apart.
# - apiGroups: [apps]
#   resources: [deployments/scale, statefulsets/scale, replicasets/scale]
#   verbs: [get, update]
# and, to refuse a take-over an autoscaler would undo (an HPA with
# minReplicas 0, KEDA's), reading the HPAs; none is ever written (at zero
# replicas an HPA leaves its target alone), so nothing here is for the
# admission policy to confine:
# - apiGroups: [autoscaling]
#   resources: [horizontalpodautoscalers]
#   verbs: [list]
# Optional, for the decoy (--decoy, the default for StatefulSets and bare
# Pods): reading the NetworkPolicies. A decoy's proxy pods carry none of the
# original's labels, so a policy that limits who may call the original's
# pods would not apply to them; with this rule a start refuses such a decoy
# (by default it copies the workload instead), without it the start warns
# that it could not check. Nothing is written:
# - apiGroups: [networking.k8s.io]
#   resources: [networkpolicies]
#   verbs: [list]
# Optional: Services in front of an Argo Rollout. Without it such a Service
# is refused (the Rollout cannot be read).
# - apiGroups: [argoproj.io]
#   resources: [rollouts]
#   verbs: [get, list, watch]
# Optional: without these the warning about the default header on a Service
# reachable from outside the cluster looks at the Service's type only, and
# --preview-via ingress/NAME cannot read the Ingress.
# - apiGroups: [networking.k8s.io]
#   resources: [ingresses]
#   verbs: [get, list]
# - apiGroups: [gateway.networking.k8s.io]
#   resources: [httproutes]
#   verbs: [list]
`

// Role is the namespaced Role kubectl-intercept needs, and nothing more.
func (o Options) Role() *rbacv1.Role {
	role := &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: metav1.ObjectMeta{Name: RoleName, Namespace: o.Namespace},
	}
	for _, r := range rules {
		role.Rules = append(role.Rules, *r.rule.DeepCopy())
	}
	return role
}

// RoleBinding binds the Role to the group, the group the policy confines.
func (o Options) RoleBinding() *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: o.name(RoleName), Namespace: o.Namespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: RoleName},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: o.Group}},
	}
}
