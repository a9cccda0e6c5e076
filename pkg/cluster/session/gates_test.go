package session

import (
	"strings"
	"testing"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

func TestGateVerdict(t *testing.T) {
	mine := route.Route{Header: "x-dev", Value: "alice", Owner: "a"}
	theirs := route.Route{Header: "x-dev", Value: "bob", Owner: "b"}
	for _, tc := range []struct {
		name string
		c    GateCheck
		open bool
		msg  string
	}{
		{"no ready sibling: it holds all there is", GateCheck{Wait: time.Second}, true, "holds every live route"},
		{"holds what the sibling holds", GateCheck{ReadySiblings: 1, Want: []route.Route{mine, theirs}, Have: []route.Route{theirs, mine}, Wait: time.Second}, true, "holds every live route"},
		{"lacks a teammate's route", GateCheck{ReadySiblings: 2, Want: []route.Route{mine, theirs}, Have: []route.Route{mine}, Wait: time.Second}, false, ""},
		{"no answer from a sibling yet", GateCheck{ReadySiblings: 1, Have: []route.Route{mine}, Wait: time.Second}, false, ""},
		{"the sidecar did not answer", GateCheck{ReadySiblings: 1, Want: []route.Route{mine}, Wait: time.Second}, false, ""},
		{"late, lacking one", GateCheck{ReadySiblings: 1, Want: []route.Route{mine, theirs}, Have: []route.Route{mine}, Waited: 2 * time.Second, Wait: time.Second}, true, "without 1 route(s)"},
		{"late, knowing nothing", GateCheck{ReadySiblings: 1, Waited: time.Second, Wait: time.Second}, true, "without knowing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			open, msg := tc.c.Verdict()
			if open != tc.open || !strings.Contains(msg, tc.msg) {
				t.Fatalf("Verdict() = %v, %q; want %v, %q", open, msg, tc.open, tc.msg)
			}
		})
	}
}
