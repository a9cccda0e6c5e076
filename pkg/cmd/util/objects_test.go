package util

import (
	"bytes"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// A copy shares nothing with its original: printing one never changes
// the other.
func TestObjectsDeepCopy(t *testing.T) {
	d := &session.Detail{Intercept: session.Intercept{Service: "cart", Ports: []string{"http", "grpc"}, Routes: []route.Route{{Header: "X-Dev", Value: "a"}}},
		Pods: []session.PodState{{Name: "p", Routes: []route.Route{{Header: "X-Dev", Value: "a"}}}}}
	orig := NewInterceptDetail(d, NewLocalStatus(true, 7, nil))
	orig.Labels = map[string]string{"a": "b"}
	list := &InterceptList{Items: []Intercept{*orig}}
	cp := list.DeepCopyObject().(*InterceptList)
	it := &cp.Items[0]
	it.Spec.Ports[0], it.Status.Routes[0].Value, it.Status.Pods[0].Routes[0].Value, it.Status.Local.PID, it.Labels["a"] = "x", "x", "x", 8, "x"
	if orig.Spec.Ports[0] != "http" || orig.Status.Routes[0].Value != "a" || orig.Status.Pods[0].Routes[0].Value != "a" || orig.Status.Local.PID != 7 || orig.Labels["a"] != "b" {
		t.Fatalf("the copy shares with the original: %+v", orig)
	}
	c := NewCandidateList([]session.Candidate{{Service: "cart", Ports: []string{"http"}}})
	cc := c.DeepCopyObject().(*CandidateList)
	cc.Items[0].Ports[0] = "x"
	if c.Items[0].Ports[0] != "http" {
		t.Fatal("the candidate copy shares its ports")
	}
}

// An object without apiVersion and kind is printed with them: the scheme
// knows every kind.
func TestPrintSetsTheKind(t *testing.T) {
	f := NewPrintFlags("the table")
	*f.OutputFormat = "yaml"
	var out bytes.Buffer
	if err := f.Print(&Candidate{ObjectMeta: metav1.ObjectMeta{Name: "cart"}}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "apiVersion: intercept.kubectl.dev/v1alpha1\n") || !strings.Contains(out.String(), "kind: Candidate\n") {
		t.Fatalf("-o yaml:\n%s", out.String())
	}
}
