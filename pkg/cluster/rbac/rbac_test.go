package rbac

import (
	"bytes"
	"flag"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite docs/rbac.yaml and docs/admission-policy.yaml")

// What an administrator reads in docs/ is what `kubectl intercept rbac`
// prints for the defaults: the two cannot drift apart.
func TestDocsAreTheDefaults(t *testing.T) {
	o := Defaults()
	role, err := o.RBACYAML()
	if err != nil {
		t.Fatal(err)
	}
	policy, err := o.PolicyYAML()
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string][]byte{"../../../docs/rbac.yaml": role, "../../../docs/admission-policy.yaml": policy} {
		if *update {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what kubectl intercept rbac renders for the defaults (go test ./pkg/cluster/rbac -update rewrites it):\n%s", path, want)
		}
	}
}

// The documents parse strictly as the objects they render, and the Role is
// bound to the group the policy confines.
func TestDocumentsParse(t *testing.T) {
	o := Options{Namespace: "shop", Group: "shop devs", ProxyImage: "registry.example.com/intercept-proxy:v1@sha256:" + strings.Repeat("a", 64)}
	out, err := o.YAML()
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	var boundGroup string
	var matched []string
	for doc := range strings.SplitSeq(string(out), "\n---\n") {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, meta.Kind)
		switch meta.Kind {
		case "Role":
			var r rbacv1.Role
			if err := yaml.UnmarshalStrict([]byte(doc), &r); err != nil {
				t.Fatal(err)
			}
			if r.Namespace != "shop" || !reflect.DeepEqual(r.Rules, o.Role().Rules) {
				t.Errorf("the Role as printed: %+v", r)
			}
		case "RoleBinding":
			var b rbacv1.RoleBinding
			if err := yaml.UnmarshalStrict([]byte(doc), &b); err != nil {
				t.Fatal(err)
			}
			if len(b.Subjects) != 1 || b.Subjects[0].Kind != rbacv1.GroupKind || b.RoleRef.Name != RoleName || b.Namespace != "shop" {
				t.Errorf("the binding does not bind the Role to one group: %+v", b)
			}
			boundGroup = b.Subjects[0].Name
		case "ValidatingAdmissionPolicy":
			var p admissionv1.ValidatingAdmissionPolicy
			if err := yaml.UnmarshalStrict([]byte(doc), &p); err != nil {
				t.Fatal(err)
			}
			matched = append(matched, p.Spec.MatchConditions[0].Expression)
			if len(validation.IsDNS1123Subdomain(p.Name)) > 0 {
				t.Errorf("policy name %q is not a valid name", p.Name)
			}
		case "ValidatingAdmissionPolicyBinding":
			var b admissionv1.ValidatingAdmissionPolicyBinding
			if err := yaml.UnmarshalStrict([]byte(doc), &b); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := []string{"Role", "RoleBinding"}
	for range 4 {
		want = append(want, "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
	}
	if !slices.Equal(kinds, want) {
		t.Errorf("documents %v, want %v", kinds, want)
	}
	if boundGroup != o.Group {
		t.Errorf("the Role is bound to %q, the policy confines %q", boundGroup, o.Group)
	}
	for _, m := range matched {
		if m != "'shop devs' in request.userInfo.groups" {
			t.Errorf("a policy matches %s", m)
		}
	}
	if !strings.Contains(string(out), "c.image == '"+o.ProxyImage+"'") {
		t.Errorf("the policy does not compare the sidecar image with %s exactly", o.ProxyImage)
	}
}

// Each group's policies have names of their own (a second group's must not
// replace the first's), and the default group keeps the documented names.
func TestNamesPerGroup(t *testing.T) {
	seen := map[string]string{}
	for _, g := range []string{DefaultGroup, "shop-devs", "Shop-Devs", "shop devs", "shop:devs", strings.Repeat("x", 300), "é"} {
		o := Options{Group: g, ProxyImage: "x:1"}
		if err := o.Validate(); err != nil {
			t.Fatalf("group %q: %v", g, err)
		}
		policies, _ := o.Policies()
		name := policies[0].Name
		if g == DefaultGroup && name != DeploymentsPolicy {
			t.Errorf("the default group's policy is %s", name)
		}
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			t.Errorf("group %q: policy name %q: %v", g, name, errs)
		}
		if other, ok := seen[name]; ok {
			t.Errorf("groups %q and %q share policy %s", g, other, name)
		}
		seen[name] = g
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Group: "g", ProxyImage: "r/i:1"}, ""},
		{Options{Namespace: "Shop", Group: "g", ProxyImage: "r/i:1"}, "namespace"},
		{Options{Group: " ", ProxyImage: "r/i:1"}, "--group"},
		{Options{Group: "a\nb", ProxyImage: "r/i:1"}, "not printable"},
		{Options{Group: "g", ProxyImage: "r/i:1' || true || '"}, "not an image reference"},
		{Options{Group: "g"}, "not an image reference"},
	} {
		err := tc.o.Validate()
		if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.o, err, tc.want)
		}
	}
}

// A group or an image that holds a quote stays a string in the CEL.
func TestCELStrings(t *testing.T) {
	for in, want := range map[string]string{
		"plain":   `'plain'`,
		"it's":    `'it\'s'`,
		`a\b`:     `'a\\b'`,
		"tab\tno": `'tab\tno'`,
	} {
		if got := celString(in); got != want {
			t.Errorf("celString(%q) = %s, want %s", in, got, want)
		}
	}
}

// jsonFields are the fields of a struct as the API names them.
func jsonFields(v any) []string {
	t := reflect.TypeOf(v)
	var out []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

// Every field of the objects the policies guard is compared, or is one the
// plugin changes, or is newer than the Kubernetes the policy compiles on:
// a field added to the API types is a decision, not a hole.
func TestEveryFieldDecided(t *testing.T) {
	for _, tc := range []struct {
		what    string
		fields  []string
		equal   []string
		changes []string // the plugin's, or the server's
		newer   []string // not in Kubernetes 1.33: the API server refuses an expression naming them
	}{
		{"Service spec", jsonFields(corev1.ServiceSpec{}), serviceSpecEqual, []string{"selector", "ports"}, nil},
		{"Service port", jsonFields(corev1.ServicePort{}), servicePortEqual, []string{"targetPort", "port", "protocol"}, nil},
		{"pod status", jsonFields(corev1.PodStatus{}), podStatusEqual, []string{"conditions"},
			[]string{"extendedResourceClaimStatus", "allocatedResources", "resources", "nodeAllocatableResourceClaimStatuses", "volumeHealth"}},
		{"Deployment spec", jsonFields(appsv1.DeploymentSpec{}), deploymentSpecEqual, []string{"replicas"}, nil},
		{"metadata", jsonFields(metav1.ObjectMeta{}), append(slices.Clone(metadataEqual), "labels", "annotations"),
			[]string{"name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation", "creationTimestamp",
				"deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"}, nil},
	} {
		for _, f := range tc.fields {
			n := 0
			for _, list := range [][]string{tc.equal, tc.changes, tc.newer} {
				if slices.Contains(list, f) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%s field %s: compared, changed or newer? (in %d lists)", tc.what, f, n)
			}
		}
		for _, f := range tc.equal {
			if !slices.Contains(tc.fields, f) {
				t.Errorf("%s has no field %s", tc.what, f)
			}
		}
	}
}
