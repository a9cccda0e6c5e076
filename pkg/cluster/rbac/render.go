package rbac

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// Objects are the Role, its binding, and the policies each with its
// binding, in the order they are applied.
func (o Options) Objects() []runtime.Object {
	objs := []runtime.Object{o.Role(), o.RoleBinding()}
	policies, bindings := o.Policies()
	for i := range policies {
		objs = append(objs, policies[i], bindings[i])
	}
	return objs
}

// JSON is the objects as one v1 List, as kubectl get -o json writes several.
func (o Options) JSON() ([]byte, error) {
	var items []any
	for _, obj := range o.Objects() {
		m, err := clean(obj)
		if err != nil {
			return nil, err
		}
		items = append(items, m)
	}
	list := map[string]any{"apiVersion": "v1", "kind": "List", "items": items}
	b, err := json.MarshalIndent(list, "", "    ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// YAML is the Role and its binding (docs/rbac.yaml), then the policies
// (docs/admission-policy.yaml), as one stream of documents.
func (o Options) YAML() ([]byte, error) {
	role, err := o.RBACYAML()
	if err != nil {
		return nil, err
	}
	policy, err := o.PolicyYAML()
	if err != nil {
		return nil, err
	}
	return append(append(role, "---\n"...), policy...), nil
}

// comment writes text as YAML comment lines.
func comment(b *bytes.Buffer, text string) {
	for line := range strings.SplitSeq(strings.TrimSpace(text), "\n") {
		b.WriteString(strings.TrimRight("# "+line, " ") + "\n")
	}
}

// flow is a list of strings in YAML's flow style, quoted where needed.
func flow(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = s
		if s == "" || strings.ContainsAny(s, ` ,:[]{}#&*!|>'"%@`+"`") {
			q[i] = strconv.Quote(s)
		}
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// RBACYAML is docs/rbac.yaml for these options: the Role, each rule with
// why the plugin needs it, and its binding to the group.
func (o Options) RBACYAML() ([]byte, error) {
	var b bytes.Buffer
	where := "each namespace where they may intercept (kubectl apply -n NAMESPACE -f)"
	if o.Namespace != "" {
		where = o.Namespace
	}
	comment(&b, fmt.Sprintf(`The namespaced Role kubectl-intercept needs, and nothing more, and its
binding to the group of developers who may intercept:
  group:     %s
  namespace: %s
The admission policy (admission-policy.yaml, or the rest of the output of
kubectl intercept rbac) confines the members of that same group to what
kubectl-intercept does with these rights: put the developers in the group.
A binding to a user directly is not confined by it. Rendered by
kubectl intercept rbac -n NAMESPACE --group GROUP.`, strconv.Quote(o.Group), where))
	role := o.Role()
	b.WriteString("apiVersion: " + role.APIVersion + "\nkind: " + role.Kind + "\nmetadata:\n  name: " + role.Name + "\n")
	if role.Namespace != "" {
		b.WriteString("  namespace: " + role.Namespace + "\n")
	}
	b.WriteString("rules:\n")
	for _, r := range rules {
		if r.why != "" {
			comment(&b, r.why)
		}
		fmt.Fprintf(&b, "- apiGroups: %s\n  resources: %s\n  verbs: %s\n", flow(r.rule.APIGroups), flow(r.rule.Resources), flow(r.rule.Verbs))
	}
	b.WriteString(optionalRules)
	b.WriteString("---\n")
	binding, err := marshal(o.RoleBinding())
	if err != nil {
		return nil, err
	}
	b.Write(binding)
	return b.Bytes(), nil
}

// PolicyYAML is docs/admission-policy.yaml for these options.
func (o Options) PolicyYAML() ([]byte, error) {
	var b bytes.Buffer
	comment(&b, fmt.Sprintf(`Confines the members of a group, who hold rbac.yaml's Role, to what
kubectl-intercept does with it (ValidatingAdmissionPolicy, GA since
Kubernetes 1.30; cluster-wide: it confines the group in every namespace):
  group:         %s
  sidecar image: %s

  - Deployments they create, change or delete are copies of ours, in the
    object as it was and as it would be (label
    app.kubernetes.io/managed-by=kubectl-intercept). A copy is created with
    exactly one sidecar intercept-proxy as kubectl-intercept writes it: the
    image above, exactly, with its own command; its arguments, environment,
    mount (no other, no subPath; no other container mounts its volume),
    security context, probe and ports of the shapes kubectl-intercept gives
    them. No process namespace shared between containers, no ephemeral
    containers, no access to its node (host namespaces, hostPath, host
    ports, privileged or host-process containers, capabilities beyond the
    baseline). A copy's update changes only its replica count, the
    annotations of a start or a close, and writes the take-over record once.
  - Services they update change only the selector, the ports' targetPort and
    the annotation intercept.kubectl.dev/record (and may remove the record
    intercept.kubectl.dev/session that releases up to 0.1 wrote); every
    other field of the spec, the labels, the other annotations, owners and
    finalizers stay.
  - Pod status they write is only the condition intercept.kubectl.dev/routes
    of a copy's pod; labels, annotations and the rest of the status stay.
  - Leases they create, change or delete are kubectl-intercept's (named
    intercept-..., labeled as above), as they were and as they would be.

What it cannot confine (the copy's app containers, service account, host
aliases and DNS against the original's, which Service a member points at a
copy; joining a session trusts whoever made its copy): docs/security.md. Rendered by
kubectl intercept rbac --group GROUP --proxy-image IMAGE: render it again
for another sidecar image (a mirror, another release).`, strconv.Quote(o.Group), o.ProxyImage))
	policies, bindings := o.Policies()
	for i := range policies {
		if i > 0 {
			b.WriteString("---\n")
		}
		for j, obj := range []any{policies[i], bindings[i]} {
			if j > 0 {
				b.WriteString("---\n")
			}
			y, err := marshal(obj)
			if err != nil {
				return nil, err
			}
			b.Write(y)
		}
	}
	return b.Bytes(), nil
}

// marshal writes obj as YAML, clean.
func marshal(obj any) ([]byte, error) {
	m, err := clean(obj)
	if err != nil {
		return nil, err
	}
	return yaml.Marshal(m)
}

// clean is obj as a map without what the server fills in (an empty
// status, a null creationTimestamp).
func clean(obj any) (map[string]any, error) {
	j, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	if meta, ok := m["metadata"].(map[string]any); ok {
		delete(meta, "creationTimestamp")
	}
	return m, nil
}
