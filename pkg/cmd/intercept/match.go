package intercept

import (
	"errors"
	"fmt"
	"strings"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/inspect"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// Which requests are the developer's: the marker, what narrows it, and
// whether the route only copies them (--wiretap).

// MatchFlags say which requests are the developer's: one of the marker
// flags, or none for the default header; and what narrows them to some
// paths and methods (NarrowFlags).
type MatchFlags struct {
	Header  string
	Cookie  string
	Baggage string
	All     bool
	NarrowFlags
}

// NarrowFlags narrow the route to HTTP requests of some paths and methods:
// a request must match each one given, as well as the marker; with --all,
// every HTTP request that matches them is the developer's.
type NarrowFlags struct {
	// PathPrefix is --path-prefix: the request's path starts with it.
	PathPrefix string
	// PathRegex is --path-regex: an RE2 expression the whole path matches.
	PathRegex string
	// Methods are --method as given: each a method or a comma list.
	Methods []string
}

// WiretapFlags make the route a read-only copy: the requests it matches
// are answered by the cluster as before, and a copy of each, with the
// cluster's answer, comes to this machine, where the local port's answer
// is compared with it (--ignore leaves parts out) and, with --record,
// kept in a file that replay sends again.
type WiretapFlags struct {
	Wiretap bool
	Record  string
	Ignore  []string
}

// matchRoute builds the route from -x, --cookie, --baggage or --all, which
// may not be combined (with none of them, the default header), narrowed by
// --path-prefix, --path-regex and --method.
func (o *MatchFlags) matchRoute() (route.Route, error) {
	r, err := o.markerRoute()
	if err != nil {
		return route.Route{}, err
	}
	if err := o.narrow(&r); err != nil {
		return route.Route{}, err
	}
	return r, nil
}

// narrow sets what --path-prefix, --path-regex and --method say on r, in
// the canonical form a sidecar holds.
func (o *NarrowFlags) narrow(r *route.Route) error {
	var err error
	if o.PathPrefix != "" {
		if r.PathPrefix, err = route.ParsePathPrefix(o.PathPrefix); err != nil {
			return fmt.Errorf("--path-prefix: %w", err)
		}
	}
	if o.PathRegex != "" {
		if r.PathRegex, err = route.ParsePathRegex(o.PathRegex); err != nil {
			return fmt.Errorf("--path-regex: %w", err)
		}
	}
	if len(o.Methods) > 0 {
		if r.Methods, err = route.ParseMethods(strings.Join(o.Methods, ",")); err != nil {
			return fmt.Errorf("--method: %w", err)
		}
	}
	return nil
}

// narrowed says some path or method narrows the route.
func (o *NarrowFlags) narrowed() bool {
	return o.PathPrefix != "" || o.PathRegex != "" || len(o.Methods) > 0
}

// markerRoute is the route of -x, --cookie, --baggage or --all alone.
func (o *MatchFlags) markerRoute() (route.Route, error) {
	given := 0
	for _, set := range []bool{o.Header != "", o.Cookie != "", o.Baggage != "", o.All} {
		if set {
			given++
		}
	}
	if given > 1 {
		return route.Route{}, errors.New("-x, --cookie, --baggage and --all each say which requests are yours; give only one of them")
	}
	switch {
	case o.All:
		return route.Route{All: true}, nil
	case o.Cookie != "":
		name, value, err := route.ParseCookie(o.Cookie)
		return route.Route{Cookie: name, Value: value}, err
	case o.Baggage != "":
		key, value, err := route.ParseBaggage(o.Baggage)
		return route.Route{Baggage: key, Value: value}, err
	case o.Header == "":
		return route.Route{Header: route.DefaultHeaderName, Value: route.DefaultHeaderValue}, nil
	}
	name, value, err := route.ParseHeader(o.Header)
	return route.Route{Header: name, Value: value}, err
}

// validateWiretap checks --wiretap, --record and --ignore.
func (o *Options) validateWiretap() error {
	switch {
	case !o.Wiretap && (o.Record != "" || len(o.Ignore) > 0):
		return errors.New("--record and --ignore go with --wiretap: add it, or leave them out")
	case o.Wiretap && o.Tunnel == local.TunnelNgrok:
		return errors.New("--wiretap's copies come through the built-in tunnel: leave out --tunnel ngrok")
	case o.Wiretap && o.Inspect == local.InspectOff && o.Record == "":
		return errors.New("--wiretap with --inspect=false shows nothing: keep the inspector, or --record FILE")
	}
	_, err := inspect.ParseIgnore(o.Ignore)
	return err
}
