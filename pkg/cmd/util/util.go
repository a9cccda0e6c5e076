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

// Narrowing says in words what narrows r to some HTTP requests ("path
// starting with /api, method GET or POST"), empty when nothing does.
func Narrowing(r route.Route) string {
	var parts []string
	if r.PathPrefix != "" {
		parts = append(parts, "path starting with "+r.PathPrefix)
	}
	if r.PathRegex != "" {
		parts = append(parts, "path matching "+r.PathRegex)
	}
	if r.Methods != "" {
		ms := strings.Split(r.Methods, ",")
		if len(ms) == 1 {
			parts = append(parts, "method "+ms[0])
		} else {
			parts = append(parts, "method "+strings.Join(ms[:len(ms)-1], ", ")+" or "+ms[len(ms)-1])
		}
	}
	return strings.Join(parts, ", ")
}

// TryCurl is a curl command line, to paste in a pod, that sends base (a
// Service's http://NAME.NAMESPACE:PORT/) a request r matches: its marker,
// and with a narrowed route a path and a method of the route's. It is
// empty for an --all route that nothing narrows (any connection will do),
// and when the route or the URL holds what a terminal would act on.
func TryCurl(r route.Route, base string) string {
	if r.All && !r.Narrowed() {
		return ""
	}
	path, method := "/", "GET"
	if r.Narrowed() {
		path, method = route.SamplePath(r), route.SampleMethod(r)
	}
	if !strings.HasPrefix(path, "/") || method == "" {
		return "" // no path of the route to show
	}
	args := []string{"curl"}
	switch method {
	case "GET":
	case "HEAD":
		args = append(args, "-I")
	default:
		args = append(args, "-X", method)
	}
	if !r.All {
		args = append(args, "-H", ShellQuote(HeaderLine(r)))
	}
	url := strings.TrimSuffix(base, "/") + path
	if strings.ContainsFunc(url, func(c rune) bool { return !shellSafe(c) }) {
		url = ShellQuote(url)
	}
	line := strings.Join(append(args, url), " ")
	if Printable(line) != line {
		return ""
	}
	return line
}

// shellSafe says c stands for itself in a POSIX shell word.
func shellSafe(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("/:.-_~%+,=@", c)
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
