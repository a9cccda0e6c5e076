package session

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// The last-one-out rule, in one place: whether anyone besides the caller
// may still be in a session. close, -c, a bare close and a leaving
// intercept decide with OthersIn; list and status read the same union of
// routes (look).
//
//   - Every copy pod whose sidecar runs is asked; the routes are the union
//     of their answers. A pod that sorts first and has no routes yet (just
//     created) does not hide another pod's.
//   - A sidecar that runs but cannot be asked (a port-forward refused,
//     timed out, forbidden by RBAC) may hold others' routes: "others may
//     be live", the Service stays switched, --force says otherwise.
//   - A presence Lease of another developer that shows no route is watched:
//     renewed while watched, they are present (their tunnel is being
//     re-linked); not renewed for its duration, it is a crash's leftover.
//   - "Nobody" is asked again after a heartbeat interval before anything
//     is restored.

// Others is who may still be in a session besides the caller. Empty is
// nobody.
type Others struct {
	// Routes are other developers' live routes, over every copy pod.
	Routes []route.Route
	// Present are other developers' presence Leases that are renewed while
	// no sidecar shows their route (a tunnel being re-linked).
	Present []string
	// Unasked says what could not be asked and so may hold others' routes.
	Unasked []string
}

// Nobody reports that no one else is in the session.
func (o *Others) Nobody() bool {
	return o == nil || len(o.Routes)+len(o.Present)+len(o.Unasked) == 0
}

// look is one look at a session: each copy pod with the routes its
// sidecar holds (Mine set on the caller's, by key), what could not be
// asked, and the presence Leases of developers other than self.
type look struct {
	pods    []PodState
	routes  []route.Route
	unasked []string
	leases  []coordinationv1.Lease
}

func (c Cluster) look(ctx context.Context, ns string, rec *Record, key, self string, leases bool) *look {
	l := &look{}
	pods, unasked, err := c.podStates(ctx, ns, rec, key)
	if err != nil {
		l.unasked = append(l.unasked, err.Error())
	}
	l.pods, l.unasked = pods, append(l.unasked, unasked...)
	l.routes, _ = unionRoutes(pods)
	if leases {
		ls, err := c.presence(ctx, ns, rec.ID, self)
		if err != nil {
			l.unasked = append(l.unasked, err.Error())
		}
		l.leases = ls
	}
	return l
}

// presence lists the presence Leases of session id but self's, leaving out
// those too old to be anyone's.
func (c Cluster) presence(ctx context.Context, ns, id, self string) ([]coordinationv1.Lease, error) {
	list, err := c.Client.CoordinationV1().Leases(ns).List(ctx, metav1.ListOptions{LabelSelector: presenceSelector(id)})
	if err != nil {
		return nil, describeAPIError(err, "reading who is present in the intercept (leases)")
	}
	now := time.Now()
	var out []coordinationv1.Lease
	for _, l := range list.Items {
		if holderOf(&l) == self || presenceAncient(&l, now) {
			continue
		}
		out = append(out, l)
	}
	return out, nil
}

func (l *look) others() *Others {
	return &Others{Routes: othersOf(l.routes), Unasked: l.unasked}
}

// OthersIn decides whether anyone but the caller (owner key key, presence
// self; either may be empty) may still be in the session.
func (c Cluster) OthersIn(ctx context.Context, ns string, rec *Record, key, self string) *Others {
	o, _ := c.othersIn(ctx, ns, rec, key, self)
	return o
}

// othersIn is OthersIn, and the presence Leases it found to be leftovers
// (name to resourceVersion), for a check under the claim.
func (c Cluster) othersIn(ctx context.Context, ns string, rec *Record, key, self string) (*Others, map[string]string) {
	ctx, cancel := context.WithTimeout(ctx, presenceDuration+20*time.Second)
	defer cancel()
	start := time.Now()
	first := c.look(ctx, ns, rec, key, self, true)
	if o := first.others(); !o.Nobody() {
		return o, nil
	}
	// No route of another: watch the presence of those who show none, for
	// a heartbeat interval at least, then look again.
	type seen struct {
		rv string
		at time.Time
	}
	watched := map[string]seen{}
	leases := first.leases
	for {
		now := time.Now()
		pending := false
		for i := range leases {
			l := &leases[i]
			s, ok := watched[l.Name]
			if !ok {
				watched[l.Name] = seen{renewal(l), now}
				pending = true
				continue
			}
			if s.rv != renewal(l) {
				return &Others{Present: []string{describePresence(l, now)}}, nil
			}
			// A leftover: expired by its clock and not renewed while
			// watched for a renewal interval; or not renewed while watched
			// for its whole duration, whatever the clocks say.
			dead := (presenceExpired(l, now) && now.Sub(s.at) > presenceRenew+time.Second) || now.Sub(s.at) > presenceDuration
			if !dead {
				pending = true
			}
		}
		if !pending && now.Sub(start) >= tunnel.KeepAliveInterval {
			break
		}
		if now.Sub(start) > presenceDuration+5*time.Second {
			// Still not sure (new Leases kept appearing): someone is there.
			return &Others{Present: presentNames(leases, now)}, nil
		}
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return &Others{Unasked: []string{"the decision was interrupted: " + err.Error()}}, nil
		}
		var err error
		if leases, err = c.presence(ctx, ns, rec.ID, self); err != nil {
			return &Others{Unasked: []string{err.Error()}}, nil
		}
	}
	// Asked again: a route that came back (a tunnel re-linked), a new
	// presence, a sidecar that now cannot be asked.
	again := c.look(ctx, ns, rec, key, self, true)
	o := again.others()
	gone := map[string]string{}
	now := time.Now()
	for i := range again.leases {
		l := &again.leases[i]
		if s, ok := watched[l.Name]; ok && s.rv == renewal(l) {
			// A crash's leftover: garbage, deleted unless renewed since.
			gone[l.Name] = renewal(l)
			rv := l.ResourceVersion
			_ = c.Client.CoordinationV1().Leases(ns).Delete(ctx, l.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv}})
			continue
		}
		o.Present = append(o.Present, describePresence(l, now))
	}
	return o, gone
}

// stillNobody is a check under the claim, without waiting: no route of
// another, nothing that could not be asked, and no presence but the
// leftovers gone found.
func (c Cluster) stillNobody(ctx context.Context, ns string, rec *Record, key, self string, gone map[string]string) *Others {
	l := c.look(ctx, ns, rec, key, self, true)
	o := l.others()
	now := time.Now()
	for i := range l.leases {
		if rv, ok := gone[l.leases[i].Name]; !ok || rv != renewal(&l.leases[i]) {
			o.Present = append(o.Present, describePresence(&l.leases[i], now))
		}
	}
	return o
}

// renewal identifies a Lease's last write: its resourceVersion and renewal
// time (either moves when it is renewed).
func renewal(l *coordinationv1.Lease) string {
	r := l.ResourceVersion
	if l.Spec.RenewTime != nil {
		r += "@" + l.Spec.RenewTime.UTC().Format(time.RFC3339Nano)
	}
	return r
}

func describePresence(l *coordinationv1.Lease, now time.Time) string {
	when := "never renewed"
	if l.Spec.RenewTime != nil {
		when = fmt.Sprintf("renewed %s ago", now.Sub(l.Spec.RenewTime.Time).Round(time.Second))
	}
	return fmt.Sprintf("lease %s (%s)", l.Name, when)
}

func presentNames(ls []coordinationv1.Lease, now time.Time) []string {
	var out []string
	for i := range ls {
		out = append(out, describePresence(&ls[i], now))
	}
	return out
}

// LeaveOptions are the inputs of Leave.
type LeaveOptions struct {
	Namespace, Service string
	// ID limits the close to one session (a developer leaving the session
	// they joined; this process's presence in it ends); empty: whatever
	// session the Service has.
	ID string
	// Key is the leaving developer's owner key: their own route, which a
	// sidecar may not have seen drop yet, is not another's. Empty when the
	// caller holds none.
	Key string
	// Force restores the Service even while others may be live.
	Force bool
	// Crashed says the process that held the session is proven to have
	// ended without leaving (a crash, kill -9): its route stays on the
	// sidecars until they miss its heartbeat, so when others are found
	// they are asked about once more after that window.
	Crashed  bool
	Timeout  time.Duration
	Progress Progress
}

// crashedRouteLinger is how long a sidecar keeps the route of a CLI that
// ended without leaving: until it misses the heartbeat, with a margin.
const crashedRouteLinger = tunnel.KeepAliveInterval + tunnel.KeepAliveTimeout + time.Second

// Left says what Leave did.
type Left struct {
	// Others are the live routes of other developers that kept the
	// Service switched.
	Others []route.Route
	// Present are other developers' presence that kept it switched while
	// no sidecar showed their route.
	Present []string
	// Unasked is what could not be asked, which kept it switched.
	Unasked []string
	// Closed is what the close did (Stayed when the Service stays).
	Closed *Closed
}

// Stayed reports that the Service stays switched for others.
func (l *Left) Stayed() bool {
	return l != nil && (len(l.Others)+len(l.Present)+len(l.Unasked) > 0 || (l.Closed != nil && l.Closed.Stayed))
}

// Why says, for a terminal, why the Service stays switched.
func (l *Left) Why() string {
	var parts []string
	if n := len(l.Others); n > 0 {
		parts = append(parts, fmt.Sprintf("%d intercept(s) by others are live", n))
	}
	for _, p := range l.Present {
		parts = append(parts, "another developer's kubectl-intercept is present ("+p+") though no sidecar shows its route right now (its tunnel is being re-linked)")
	}
	for _, u := range l.Unasked {
		parts = append(parts, "others may be live: "+u)
	}
	if len(parts) == 0 {
		return "another developer joined meanwhile"
	}
	return strings.Join(parts, "; ")
}

func (l *Left) set(o *Others) *Left {
	l.Others, l.Present, l.Unasked = o.Routes, o.Present, o.Unasked
	if l.Closed == nil {
		l.Closed = &Closed{Stayed: true}
	}
	return l
}

// Leave is the last-one-out rule: the Service is restored and the copy
// deleted only when OthersIn finds nobody else (or with Force), asked
// before the copy is claimed and once more under the claim.
func (c Cluster) Leave(ctx context.Context, o LeaveOptions) (*Left, error) {
	// The leaving CLI's own presence (a foreground intercept leaving the
	// session it holds) is not another's, and ends here.
	self := ""
	if o.ID != "" {
		if p := takeOwn(o.ID); p != nil {
			self = p.Holder
			p.End(ctx)
		}
	}
	var gone map[string]string
	if !o.Force {
		if rec := c.currentRecord(ctx, o.Namespace, o.Service, o.ID); rec != nil {
			if err := checkRecordedCopy(ctx, c.Client, o.Namespace, o.Service, rec); err != nil {
				return nil, err
			}
			p := o.Progress
			if p == nil {
				p = NopProgress{}
			}
			done := p.Step("asking every copy pod of service " + o.Service + " whether others still intercept it")
			var others *Others
			others, gone = c.othersIn(ctx, o.Namespace, rec, o.Key, self)
			done(nil)
			if !others.Nobody() && o.Crashed {
				done = p.Step(fmt.Sprintf("asking again in %s: a crashed intercept's route stays on the sidecars until they miss its heartbeat", crashedRouteLinger))
				select {
				case <-ctx.Done():
					done(ctx.Err())
					return nil, ctx.Err()
				case <-time.After(crashedRouteLinger):
				}
				others, gone = c.othersIn(ctx, o.Namespace, rec, o.Key, self)
				done(nil)
			}
			if !others.Nobody() {
				return (&Left{}).set(others), nil
			}
		}
	}
	// Asked again once the copy is claimed: a developer who registered and
	// settled between the check above and the claim keeps the session.
	var others *Others
	stay := func(ctx context.Context, rec *Record) bool {
		others = c.stillNobody(ctx, o.Namespace, rec, o.Key, self, gone)
		return !others.Nobody()
	}
	if o.Force {
		stay = nil
	}
	closed, err := Close(ctx, c.Client, CloseOptions{Namespace: o.Namespace, Service: o.Service, ID: o.ID,
		Timeout: o.Timeout, Force: o.Force, Progress: o.Progress, StayIf: stay})
	if err == nil && closed.Stayed {
		return (&Left{Closed: closed}).set(others), nil
	}
	return &Left{Closed: closed}, err
}

// othersOf is the routes that are not the asking CLI's own.
func othersOf(routes []route.Route) []route.Route {
	var out []route.Route
	for _, r := range routes {
		if !r.Mine && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}
