package status

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	cmdutil "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/util"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// Two developers on one header with different paths, and an --all route
// narrowed to a path and a method: status shows each with its narrowing,
// counts the pods that hold that very route (not any route it might
// overlap), and gives for each a curl of a path and method it takes.
func TestStatusNarrowedRoutes(t *testing.T) {
	cs, _ := statusCluster(true)
	carol := route.Route{Header: "X-Dev", Value: "alice", PathPrefix: "/api", Owner: "carol@laptop"}
	dave := route.Route{Header: "X-Dev", Value: "alice", PathPrefix: "/web", Methods: "GET", Owner: "dave@laptop"}
	erin := route.Route{All: true, PathRegex: "/hooks/[a-z]+", Methods: "POST", Owner: "erin@laptop"}
	routes := map[string][]route.Route{
		"shop-intercept-abc123-a": {carol, dave, erin},
		"shop-intercept-abc123-b": {carol},
	}
	o, out := statusOptions(cs, routes)
	st, err := o.Cluster.Get(context.Background(), o.Namespace, o.Service)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeStatus(out, st, st.Created.Add(90*time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"X-Dev:alice path /api* by carol@laptop, on 2 of 2 ready pods",
		"X-Dev:alice path /web* GET by dave@laptop, on 1 of 2 ready pods",
		"all traffic path ~/hooks/[a-z]+ POST by erin@laptop, on 1 of 2 ready pods",
		"Try it from inside the cluster: curl -H 'X-Dev: alice' http://shop.team:80/api\n",
		"Try it from inside the cluster: curl -H 'X-Dev: alice' http://shop.team:80/web\n",
		"Try it from inside the cluster: curl -X POST http://shop.team:80/hooks/a\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in:\n%s", want, out.String())
		}
	}

	o, out = statusOptions(cs, routes, "-o", "json")
	if err := o.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var obj cmdutil.Intercept
	if err := json.Unmarshal(out.Bytes(), &obj); err != nil {
		t.Fatalf("%v in:\n%s", err, out.String())
	}
	if len(obj.Status.Routes) != 3 || obj.Status.Routes[1] != dave || obj.Status.Routes[2] != erin {
		t.Errorf("-o json routes: %+v", obj.Status.Routes)
	}
	for _, field := range []string{`"pathPrefix": "/web"`, `"pathRegex": "/hooks/[a-z]+"`, `"methods": "POST"`} {
		if !strings.Contains(out.String(), field) {
			t.Errorf("-o json lacks %s:\n%s", field, out.String())
		}
	}
}
