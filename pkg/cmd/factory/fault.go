//go:build e2ehooks

package factory

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"k8s.io/client-go/rest"
)

// EnvFaultAfter makes the process exit (code 3) right after its N-th
// successful mutating API call: the crash tests use it to stop the start and
// close sequences after every step and check that close recovers. Only a
// plugin built with the e2ehooks tag (make build-e2e) reads it; the
// release build has no such hook (fault_release.go).
const EnvFaultAfter = "KUBECTL_INTERCEPT_FAULT_AFTER"

// injectFault wraps cfg's transport when EnvFaultAfter is set.
func injectFault(cfg *rest.Config) {
	n, err := strconv.Atoi(os.Getenv(EnvFaultAfter))
	if err != nil || n <= 0 {
		return
	}
	var count atomic.Int64
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := rt.RoundTrip(r)
			if err == nil && resp.StatusCode < 300 && mutating(r) && count.Add(1) == int64(n) {
				fmt.Fprintf(os.Stderr, "fault injected after mutating call %d: %s %s\n", n, r.Method, r.URL.Path)
				os.Exit(3)
			}
			return resp, err
		})
	})
}

// mutating tells the calls that change the cluster from reads, reviews of
// who the caller is and what they may do, and port-forwards. Updates of a Deployment are the starting and
// closing marks on the copy (a heartbeat runs on its own clock), patches of
// a Deployment the copy following the original's scale, and patches of a
// pod's status its readiness gate: none is a step of the sequence, and a
// crash between two of them leaves the state of the step before.
func mutating(r *http.Request) bool {
	switch r.Method {
	case http.MethodPost, http.MethodDelete:
	case http.MethodPut, http.MethodPatch:
		if strings.Contains(r.URL.Path, "/deployments/") || strings.HasSuffix(r.URL.Path, "/status") {
			return false
		}
	default:
		return false
	}
	// A dry run changes nothing. Leases are the start/close claim and a
	// developer's presence, on clocks of their own too.
	if r.URL.Query().Get("dryRun") != "" {
		return false
	}
	return !strings.Contains(r.URL.Path, "selfsubject") && !strings.HasSuffix(r.URL.Path, "/portforward") &&
		!strings.Contains(r.URL.Path, "/leases")
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
