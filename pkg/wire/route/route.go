// Package route is what marks a developer's requests: a header, a cookie or
// a baggage member with a value, or every connection; how the CLI's flags
// spell it, what makes one valid, and when two claim the same requests.
package route

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"unicode"
)

// DefaultHeader is the header czctl users know: requests carrying
// X-C6O-INTERCEPT: yes are intercepted unless another header is given.
const (
	DefaultHeaderName  = "X-C6O-INTERCEPT"
	DefaultHeaderValue = "yes"
)

// Route says which requests go to one developer: those that carry a header
// (Header), a cookie (Cookie) or a W3C baggage member (Baggage) with Value,
// exactly one of the three; or every connection (All). A Route with only
// Header and Value, as CLIs before cookie and baggage routes send, is a
// header match.
type Route struct {
	// Header is matched case-insensitively; Value exactly.
	Header string `json:"header,omitempty"`
	// Cookie names a cookie of the request's Cookie headers; its value,
	// without surrounding double quotes, must be Value.
	Cookie string `json:"cookie,omitempty"`
	// Baggage is the key of a member of the request's baggage headers; its
	// value, percent-decoded, must be Value.
	Baggage string `json:"baggage,omitempty"`
	// Value is what the header, cookie or baggage member must equal; for
	// Baggage it is held percent-decoded.
	Value string `json:"value,omitempty"`
	// All routes every connection of the port, whatever it carries; with
	// PathPrefix, PathRegex or Methods, every HTTP request that matches
	// them.
	All bool `json:"all,omitempty"`
	// PathPrefix, when set, narrows the route to requests whose path (the
	// request target's path as sent, without its query) starts with it.
	PathPrefix string `json:"pathPrefix,omitempty"`
	// PathRegex, when set, narrows the route to requests whose whole path
	// matches this RE2 expression.
	PathRegex string `json:"pathRegex,omitempty"`
	// Methods, when set, narrows the route to requests with one of these
	// methods: upper case, comma-separated, each once (a string keeps a
	// Route comparable).
	Methods string `json:"methods,omitempty"`
	// Owner names the developer (user@host) for messages to others:
	// printable, at most MaxOwner bytes.
	Owner string `json:"owner,omitempty"`
	// Client is the route's owner key: a secret only its CLI knows (at
	// least MinClient characters; a sidecar never lists it). A registration
	// with the same key replaces the earlier one, which a sidecar may not
	// yet have seen drop when the CLI reconnects; nobody else can.
	Client string `json:"client,omitempty"`
	// Remote, when set, is an HTTPS endpoint (an ngrok URL) that matching
	// requests are sent to instead of this tunnel; the tunnel then only
	// holds the route and its heartbeat.
	Remote string `json:"remote,omitempty"`
	// Secret goes with every request sent to Remote, so the developer's
	// end can refuse strangers who find the URL. It travels only on the
	// control stream and a sidecar never lists it.
	Secret string `json:"secret,omitempty"`
	// Mine is set in a sidecar's list of routes on those whose owner key
	// the asking CLI gave: a CLI tells its own routes from its
	// teammates' without anyone seeing a key.
	Mine bool `json:"mine,omitempty"`
	// Suspended is set in a sidecar's list of routes on those a contest
	// holds out of matching on that pod (see the tunnel's contest): the
	// requests the contested route matches go to the app there, the
	// others still to the route.
	Suspended bool `json:"suspended,omitempty"`
	// Wiretap makes the route a read-only copy: the requests it matches
	// go where they would without it (the app, or an intercepting
	// developer), and once answered the sidecar sends the developer the
	// request and the answer (pkg/wire/tap). A wiretap route takes no
	// request from anyone, so it never conflicts with another route.
	Wiretap bool `json:"wiretap,omitempty"`
	// Port names the Service port a listed route holds, in the CLI's
	// listings of an intercept of several ports; a sidecar neither sets
	// nor reads it (each port has its own routes).
	Port string `json:"port,omitempty"`
}

// String renders the route the way the CLI's flags take it: name:value
// for -x, "cookie name=value" for --cookie, "baggage key=value" for
// --baggage (the value percent-encoded, as a baggage header carries it),
// then what narrows it: "x-dev:alice path /api/v2* GET,POST" for a path
// prefix and methods, "all traffic path ~/hooks/[a-z]+" for a regex.
func (r Route) String() string {
	if r.Wiretap {
		return r.marker() + r.narrowing() + " (wiretap)"
	}
	return r.marker() + r.narrowing()
}

// marker renders what the route's requests carry.
func (r Route) marker() string {
	switch {
	case r.All:
		return "all traffic"
	case r.Cookie != "":
		return "cookie " + r.Cookie + "=" + r.Value
	case r.Baggage != "":
		return "baggage " + r.Baggage + "=" + EscapeBaggage(r.Value)
	}
	return r.Header + ":" + r.Value
}

// Conflicts reports whether one request could be claimed by both routes:
// they match the same header (in any case), cookie or baggage key with
// the same value, or either is All; and some method both take (a route
// without methods takes every one); and some path both take. Paths are
// compared conservatively: a path prefix overlaps another when one is a
// prefix of the other; a regex counts by its literal prefix (what every
// path it matches starts with, taken from its syntax), and when it is a
// literal through and through, by the one path it matches. So two routes
// may be said to conflict that no one request reaches both of; never the
// other way around.
func (r Route) Conflicts(o Route) bool {
	if !r.sameRequests(o) {
		return false
	}
	return pathsOverlap(Compile(r), Compile(o))
}

// sameRequests is Conflicts but for paths: neither is a wiretap, they
// share a marker (or one is All) and a method.
func (r Route) sameRequests(o Route) bool {
	if r.Wiretap || o.Wiretap {
		return false // a copy takes nothing from anyone
	}
	sameMarker := r.All || o.All ||
		http.CanonicalHeaderKey(r.Header) == http.CanonicalHeaderKey(o.Header) &&
			r.Cookie == o.Cookie && r.Baggage == o.Baggage && r.Value == o.Value
	return sameMarker && methodsOverlap(r.Methods, o.Methods)
}

// Takes says whether r takes requests that contested would match, so
// that a contest over contested suspends r: r conflicts with it. A
// contest over an All route suspends only All routes, never every route
// of the pod.
func (r Route) Takes(contested Route) bool {
	return Compile(r).Takes(Compile(contested))
}

// Validate reports what makes a route one a sidecar cannot match: it must
// be All or name exactly one of a header, a cookie and a baggage key, with
// a value that kind of field can carry; a path prefix, regex and methods
// as ParsePathPrefix, ParsePathRegex and ParseMethods return them.
func (r Route) Validate() error {
	if err := CheckRemote(r.Remote, r.Secret); err != nil {
		return err
	}
	if err := checkOwner(r.Owner, r.Client); err != nil {
		return err
	}
	if err := r.checkNarrowing(); err != nil {
		return err
	}
	if r.Wiretap && r.Remote != "" {
		return errors.New("a wiretap's copies travel through the tunnel; a remote endpoint can't take them")
	}
	if r.All {
		if r.Remote != "" && !r.Narrowed() {
			return errors.New("every connection (--all) can't go through a remote endpoint: it carries HTTP requests only; narrow the route by path or method")
		}
		return nil
	}
	var err error
	named := 0
	if r.Header != "" {
		named++
		err = CheckHeader(r.Header, r.Value)
	}
	if r.Cookie != "" {
		named++
		err = CheckCookie(r.Cookie, r.Value)
	}
	if r.Baggage != "" {
		named++
		err = CheckBaggage(r.Baggage, r.Value)
	}
	switch {
	case named == 0:
		return errors.New("the route names no header, cookie or baggage key to match (is the CLI newer than this sidecar?)")
	case named > 1:
		return fmt.Errorf("the route names more than one of header %q, cookie %q and baggage key %q; a route matches one", r.Header, r.Cookie, r.Baggage)
	}
	return err
}

// CheckRemote checks a remote endpoint and its secret.
func CheckRemote(remote, secret string) error {
	if remote == "" {
		if secret != "" {
			return errors.New("the route has a secret but no remote endpoint")
		}
		return nil
	}
	u, err := url.Parse(remote)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return fmt.Errorf("remote endpoint %q is not an https://HOST URL", remote)
	}
	if len(secret) < 32 {
		return errors.New("a route to a remote endpoint needs a secret of at least 32 characters")
	}
	return nil
}

// Bounds of a route's owner name and owner key.
const (
	MaxOwner  = 128
	MinClient = 32
)

// checkOwner refuses an owner name that could carry terminal escapes into
// another developer's terminal, and an owner key short enough to guess.
func checkOwner(owner, client string) error {
	if len(owner) > MaxOwner {
		return fmt.Errorf("the route's owner name is longer than %d bytes", MaxOwner)
	}
	for _, c := range owner {
		if !unicode.IsPrint(c) {
			return fmt.Errorf("the route's owner name %q has a character that is not printable", owner)
		}
	}
	if client != "" && len(client) < MinClient {
		return fmt.Errorf("the route's owner key is shorter than %d characters: upgrade kubectl-intercept", MinClient)
	}
	return nil
}
