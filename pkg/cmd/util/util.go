// Package util holds what several commands share: the order they run in,
// progress and error text for the terminal, the Service argument, the
// cluster's intercept state, the renderings of routes, and what list and
// status print with -o (the intercept.kubectl.dev/v1alpha1 objects and
// the flags that pick the printer).
package util

import (
	"context"
	"os"
	"strings"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/version"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// RunSteps runs a command in kubectl's order: complete fills in what the
// flags and the kubeconfig say (no network call), validate checks it
// without changing anything, and run acts.
func RunSteps(ctx context.Context, complete, validate func() error, run func(context.Context) error) error {
	if err := complete(); err != nil {
		return err
	}
	if err := validate(); err != nil {
		return err
	}
	return run(ctx)
}

// OrNone is s, or <none> when it is empty, for a table cell.
func OrNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// DescribeRoutes renders routes with their owners and ports, made safe
// for a terminal.
func DescribeRoutes(rs []route.Route) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = Printable(r.String())
		if r.Owner != "" {
			parts[i] += " by " + Printable(r.Owner)
		}
		if r.Port != "" {
			parts[i] += " on port " + Printable(r.Port)
		}
	}
	return strings.Join(parts, ", ")
}

// WhyStayed says why the last-one-out rule kept a Service switched.
func WhyStayed(left *session.Left) string {
	why := Printable(left.Why())
	if len(left.Others) > 0 {
		why = strings.Replace(why, "are live", "are live ("+DescribeRoutes(left.Others)+")", 1)
	}
	return why
}

// HeaderLine is the header field that a request carries to match r (not
// an --all route).
func HeaderLine(r route.Route) string {
	switch {
	case r.Cookie != "":
		return "Cookie: " + r.Cookie + "=" + r.Value
	case r.Baggage != "":
		return "baggage: " + r.Baggage + "=" + route.EscapeBaggage(r.Value)
	}
	return r.Header + ": " + r.Value
}

// ShellQuote quotes s for a POSIX shell, for commands printed to paste.
func ShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// EnvProxyImage overrides the default sidecar image.
const EnvProxyImage = "KUBECTL_INTERCEPT_PROXY_IMAGE"

// ProxyImage is the sidecar image: the flag's, else $KUBECTL_INTERCEPT_PROXY_IMAGE,
// else the one this build was made with.
func ProxyImage(flag string) string {
	if flag != "" {
		return flag
	}
	if env := os.Getenv(EnvProxyImage); env != "" {
		return env
	}
	return version.ProxyImage()
}
