package podenv

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"VAR": "value", "EMPTY": "", "EQ": "a=b", "NL": "line1\nline2"}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	for in, want := range map[string]string{
		"":                    "",
		"plain":               "plain",
		"$(VAR)":              "value",
		"x$(VAR)y":            "xvaluey",
		"$(VAR)$(VAR)":        "valuevalue",
		"$(EMPTY)":            "",
		"$(EQ)":               "a=b",
		"$(NL)":               "line1\nline2",
		"$(UNDEFINED)":        "$(UNDEFINED)",
		"$$(VAR)":             "$(VAR)",
		"$$$(VAR)":            "$value",
		"$$$$(VAR)":           "$$(VAR)",
		"$$":                  "$",
		"$":                   "$",
		"a$":                  "a$",
		"$x":                  "$x",
		"$(":                  "$(",
		"$(VAR":               "$(VAR",
		"$()":                 "$()",
		"$(VAR)$":             "value$",
		"$(VAR) and $(OTHER)": "value and $(OTHER)",
		"(VAR)":               "(VAR)",
		"$)":                  "$)",
	} {
		if got := Expand(in, lookup); got != want {
			t.Errorf("Expand(%q) = %q, want %q", in, got, want)
		}
	}
}

// objects is a namespace's ConfigMaps and Secrets; forbidden names a Secret
// the caller may not read.
type objects struct {
	cms       map[string]*corev1.ConfigMap
	secrets   map[string]*corev1.Secret
	forbidden string
}

func (o objects) ConfigMap(_ context.Context, name string) (*corev1.ConfigMap, error) {
	if cm, ok := o.cms[name]; ok {
		return cm, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, name)
}

func (o objects) Secret(_ context.Context, name string) (*corev1.Secret, error) {
	if name == o.forbidden {
		return nil, apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, name, nil)
	}
	if s, ok := o.secrets[name]; ok {
		return s, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)
}

func testObjects() objects {
	return objects{
		cms: map[string]*corev1.ConfigMap{
			"app": {ObjectMeta: metav1.ObjectMeta{Name: "app"}, Data: map[string]string{
				"LOG_LEVEL": "debug", "DSN": "host=db user=app sslmode=disable", "TEMPLATE": "$(LOG_LEVEL) stays", "MULTI": "a\nb",
			}},
		},
		secrets: map[string]*corev1.Secret{
			"db": {ObjectMeta: metav1.ObjectMeta{Name: "db"}, Data: map[string][]byte{"password": []byte("p@ss=word$$"), "user": []byte("app")}},
		},
	}
}

func testPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-copy-abc", Namespace: "shop", UID: "uid-1",
			Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"team": "checkout"}},
		Spec: corev1.PodSpec{NodeName: "node-1", ServiceAccountName: "web"},
		Status: corev1.PodStatus{PodIP: "10.0.0.7", PodIPs: []corev1.PodIP{{IP: "10.0.0.7"}, {IP: "fd00::7"}},
			HostIP: "192.168.1.2", HostIPs: []corev1.HostIP{{IP: "192.168.1.2"}}},
	}
}

func values(vars []Var) map[string]string {
	m := map[string]string{}
	for _, v := range vars {
		m[v.Name] = v.Value
	}
	return m
}

// The kubelet's rules: envFrom first (prefix, later sources win), then env
// in order; $(VAR) only from what is defined before, and from the Service
// links; values from valueFrom never expanded; $$ escapes; optional
// references that are missing leave the variable out.
func TestResolveAsTheKubeletDoes(t *testing.T) {
	c := &corev1.Container{
		Name: "web",
		EnvFrom: []corev1.EnvFromSource{
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app"}}},
			{Prefix: "DB_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}}},
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Optional: ptr.To(true)}},
		},
		Env: []corev1.EnvVar{
			{Name: "GREETING", Value: "level $(LOG_LEVEL) at $(POD_NAME)"}, // POD_NAME is defined later: stays
			{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "SELF", Value: "$(POD_NAME)/$$(POD_NAME)/$(DB_user)"},
			{Name: "LOG_LEVEL", Value: "info"}, // replaces envFrom's
			{Name: "DSN_COPY", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "app"}, Key: "TEMPLATE"}}},
			{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "password"}}},
			{Name: "MAYBE", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "app"}, Key: "nope", Optional: ptr.To(true)}}},
			{Name: "LINKED", Value: "$(API_SERVICE_HOST):$(API_SERVICE_PORT_GRPC)"},
			{Name: "EMPTY"},
			{Name: "TEAM", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['team']"}}},
			{Name: "APP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
			{Name: "IPS", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIPs"}}},
			{Name: "NODE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
			{Name: "SA", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.serviceAccountName"}}},
		},
	}
	services := []corev1.Service{
		{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "shop"}, Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.10",
			Ports: []corev1.ServicePort{{Name: "http", Port: 80}, {Name: "grpc", Port: 9000, Protocol: corev1.ProtocolTCP}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "headless", Namespace: "shop"}, Spec: corev1.ServiceSpec{ClusterIP: "None", Ports: []corev1.ServicePort{{Port: 80}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "elsewhere"}, Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.11", Ports: []corev1.ServicePort{{Port: 80}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"}, Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.1", Ports: []corev1.ServicePort{{Name: "https", Port: 443}}}},
	}
	vars, err := Resolve(context.Background(), Input{Pod: testPod(), Container: c, Services: services, Objects: testObjects()})
	if err != nil {
		t.Fatal(err)
	}
	got := values(vars)
	want := map[string]string{
		"LOG_LEVEL":                     "info",
		"DSN":                           "host=db user=app sslmode=disable",
		"TEMPLATE":                      "$(LOG_LEVEL) stays",
		"MULTI":                         "a\nb",
		"DB_password":                   "p@ss=word$$",
		"DB_user":                       "app",
		"GREETING":                      "level debug at $(POD_NAME)",
		"POD_NAME":                      "web-copy-abc",
		"SELF":                          "web-copy-abc/$(POD_NAME)/app",
		"DSN_COPY":                      "$(LOG_LEVEL) stays",
		"PASSWORD":                      "p@ss=word$$",
		"LINKED":                        "10.96.0.10:9000",
		"EMPTY":                         "",
		"TEAM":                          "checkout",
		"APP":                           "web",
		"IPS":                           "10.0.0.7,fd00::7",
		"NODE":                          "node-1",
		"SA":                            "web",
		"API_SERVICE_HOST":              "10.96.0.10",
		"API_SERVICE_PORT":              "80",
		"API_SERVICE_PORT_HTTP":         "80",
		"API_SERVICE_PORT_GRPC":         "9000",
		"API_PORT":                      "tcp://10.96.0.10:80",
		"API_PORT_80_TCP":               "tcp://10.96.0.10:80",
		"API_PORT_80_TCP_PROTO":         "tcp",
		"API_PORT_80_TCP_PORT":          "80",
		"API_PORT_80_TCP_ADDR":          "10.96.0.10",
		"API_PORT_9000_TCP":             "tcp://10.96.0.10:9000",
		"API_PORT_9000_TCP_PROTO":       "tcp",
		"API_PORT_9000_TCP_PORT":        "9000",
		"API_PORT_9000_TCP_ADDR":        "10.96.0.10",
		"KUBERNETES_SERVICE_HOST":       "10.96.0.1",
		"KUBERNETES_SERVICE_PORT":       "443",
		"KUBERNETES_SERVICE_PORT_HTTPS": "443",
		"KUBERNETES_PORT":               "tcp://10.96.0.1:443",
		"KUBERNETES_PORT_443_TCP":       "tcp://10.96.0.1:443",
		"KUBERNETES_PORT_443_TCP_PROTO": "tcp",
		"KUBERNETES_PORT_443_TCP_PORT":  "443",
		"KUBERNETES_PORT_443_TCP_ADDR":  "10.96.0.1",
	}
	if !reflect.DeepEqual(got, want) {
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %q, want %q", k, got[k], v)
			}
		}
		for k, v := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("unexpected %s = %q", k, v)
			}
		}
	}
	// The pod's order: envFrom's keys first, sorted per source, then env.
	var names []string
	for _, v := range vars[:8] {
		names = append(names, v.Name)
	}
	if strings.Join(names, " ") != "DSN LOG_LEVEL MULTI TEMPLATE DB_password DB_user GREETING POD_NAME" {
		t.Errorf("order %v", names)
	}
	for _, v := range vars {
		if v.Name == "LOG_LEVEL" && v.From != "env" || v.Name == "PASSWORD" && v.From != "secret/db" || v.Name == "API_PORT" && v.From != "service links" {
			t.Errorf("%s from %q", v.Name, v.From)
		}
	}
}

// enableServiceLinks: false leaves only Service kubernetes' variables.
func TestServiceLinksOff(t *testing.T) {
	services := []corev1.Service{
		{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "shop"}, Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.10", Ports: []corev1.ServicePort{{Port: 80}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"}, Spec: corev1.ServiceSpec{ClusterIP: "fd00::1", Ports: []corev1.ServicePort{{Port: 443}}}},
	}
	m := ServiceLinks(services, "shop", false)
	if _, ok := m["API_SERVICE_HOST"]; ok {
		t.Error("service links given while disabled")
	}
	if m["KUBERNETES_PORT"] != "tcp://[fd00::1]:443" {
		t.Errorf("KUBERNETES_PORT = %q", m["KUBERNETES_PORT"])
	}
	if m := ServiceLinks([]corev1.Service{{ObjectMeta: metav1.ObjectMeta{Name: "9lives", Namespace: "shop"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.3", Ports: []corev1.ServicePort{{Port: 80}}}}}, "shop", true); m["_9LIVES_SERVICE_HOST"] != "10.96.0.3" {
		t.Errorf("a name with a leading digit: %v", m)
	}
}

// resourceFieldRef: set limits and requests divided and rounded up; an
// unset limit reads the node's allocatable.
func TestResourceFieldRef(t *testing.T) {
	c := &corev1.Container{
		Name: "web",
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
		},
		Env: []corev1.EnvVar{
			{Name: "REQ_CPU", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "requests.cpu"}}},
			{Name: "REQ_CPU_M", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "requests.cpu", Divisor: resource.MustParse("1m")}}},
			{Name: "LIM_MEM_MI", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
			{Name: "LIM_CPU", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}},
			{Name: "LIM_EPH", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.ephemeral-storage", Divisor: resource.MustParse("1Gi")}}},
		},
	}
	alloc := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("3500m"), corev1.ResourceEphemeralStorage: resource.MustParse("20Gi")}
	vars, err := Resolve(context.Background(), Input{Pod: testPod(), Container: c, Allocatable: alloc, Objects: testObjects()})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"REQ_CPU": "1", "REQ_CPU_M": "250", "LIM_MEM_MI": "128", "LIM_CPU": "4", "LIM_EPH": "20"}
	if got := values(vars); !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// A required reference that is missing is an error naming it; a Secret
// the caller may not read says so.
func TestResolveErrors(t *testing.T) {
	for _, tc := range []struct {
		env  corev1.EnvVar
		from *corev1.EnvFromSource
		want string
	}{
		{env: corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "app"}, Key: "nope"}}}, want: `variable X: configmap app has no key "nope"`},
		{env: corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "missing"}, Key: "k"}}}, want: `configmaps "missing" not found`},
		{env: corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "locked"}, Key: "k"}}}, want: `secrets "locked" is forbidden`},
		{from: &corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "missing"}}}, want: `envFrom: secrets "missing" not found`},
		{env: corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}}}, want: "is not a field"},
	} {
		c := &corev1.Container{Name: "web"}
		if tc.from != nil {
			c.EnvFrom = []corev1.EnvFromSource{*tc.from}
		} else {
			c.Env = []corev1.EnvVar{tc.env}
		}
		o := testObjects()
		o.forbidden = "locked"
		_, err := Resolve(context.Background(), Input{Pod: testPod(), Container: c, Objects: o})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
}

// readDockerEnvFile reads a file as `docker run --env-file` does: lines,
// leading whitespace trimmed, blank lines and # comments skipped, the name
// up to the first =, the value the rest of the line as it is.
func readDockerEnvFile(t *testing.T, data []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimLeftFunc(sc.Text(), unicode.IsSpace)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok || strings.ContainsAny(name, " \t") {
			t.Fatalf("docker would refuse line %q", line)
		}
		out[name] = value
	}
	return out
}

// The env file loads with Docker's rules to the same values, = $ and
// quotes included; a multi-line value cannot be written there and is named;
// the JSON holds every value exactly.
func TestEnvFileAndJSON(t *testing.T) {
	vars := []Var{
		{Name: "DSN", Value: "host=db user=app"},
		{Name: "PRICE", Value: "$$5 $(X) ${HOME}"},
		{Name: "QUOTED", Value: `"as is" 'too'`},
		{Name: "SPACES", Value: "  padded  "},
		{Name: "EMPTY", Value: ""},
		{Name: "PEM", Value: "-----BEGIN-----\nabc\n-----END-----\n"},
	}
	var buf bytes.Buffer
	skipped, err := WriteEnvFile(&buf, vars)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(skipped, []string{"PEM"}) {
		t.Errorf("skipped %v, want [PEM]", skipped)
	}
	got := readDockerEnvFile(t, buf.Bytes())
	want := values(vars[:5])
	// Docker keeps trailing spaces but trims leading whitespace of the line,
	// not of the value.
	if !reflect.DeepEqual(got, want) {
		t.Errorf("docker reads %v, want %v", got, want)
	}
	buf.Reset()
	if err := WriteJSON(&buf, vars); err != nil {
		t.Fatal(err)
	}
	var fromJSON map[string]string
	if err := json.Unmarshal(buf.Bytes(), &fromJSON); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromJSON, values(vars)) {
		t.Errorf("JSON holds %v, want %v", fromJSON, values(vars))
	}
}
