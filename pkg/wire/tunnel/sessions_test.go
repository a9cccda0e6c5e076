package tunnel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// pipeListener is a control port whose connections are in-memory pipes:
// hundreds of sessions without a file descriptor each. (Not in a synctest
// bubble: yamux keeps timers in a process-wide pool, which a bubble's
// timers must not enter.)
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.UnixAddr{Name: "control", Net: "unix"} }

// client opens a session, as a port-forward to the control port does.
func (l *pipeListener) client() (*Client, error) {
	a, b := net.Pipe()
	select {
	case l.conns <- a:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := NewClient(b)
	if err != nil {
		b.Close()
		return nil, err
	}
	return c, nil
}

// closedWithin says whether c's session ends within d.
func closedWithin(c *Client, d time.Duration) bool {
	select {
	case <-c.Done():
		return true
	case <-time.After(d):
		return false
	}
}

// Anyone with pods/portforward can open sessions on a copy pod's control
// port that register nothing. Twice MaxControlSessions of them, some that
// asked once and hold nothing, some that keep asking, do not shut a
// developer out: the developer's tunnel gets in and registers its route,
// a query (status, list) is answered, the tunnel survives a second wave,
// and the sessions that hold nothing are closed after IdleControlSession.
func TestIdleSessionsDoNotShutDevelopersOut(t *testing.T) {
	table := &fakeTable{routes: map[string]DialFunc{}}
	srv := &Server{Pod: "p1", Routes: table}
	ctx, cancel := context.WithCancel(context.Background())
	ln := newPipeListener()
	served := make(chan struct{})
	go func() { _ = srv.Serve(ctx, ln); close(served) }()
	var attack []*Client
	var askers sync.WaitGroup
	defer func() {
		cancel()
		for _, c := range attack {
			c.Close()
		}
		askers.Wait()
		<-served
	}()
	// wave opens n sessions that ask for the routes once; every
	// second one goes on asking every second until its session ends.
	wave := func(n int) {
		for i := range n {
			c, err := ln.client()
			if err != nil {
				continue
			}
			attack = append(attack, c)
			if _, err := c.Routes(); err != nil || i%2 == 0 {
				continue
			}
			askers.Add(1)
			go func() {
				defer askers.Done()
				for {
					select {
					case <-c.Done():
						return
					case <-time.After(time.Second):
					}
					if _, err := c.Routes(); err != nil {
						return
					}
				}
			}()
		}
	}
	wave(2 * MaxControlSessions)

	// The developer's tunnel gets in and registers (a CLI retries
	// every second; within 10 seconds is the bound).
	r := route.Route{Header: "x-dev", Value: "alice"}
	start := time.Now()
	var dev *Client
	for dev == nil {
		c, err := ln.client()
		if err == nil {
			if _, err = c.Register(r); err == nil {
				dev = c
				break
			}
			c.Close()
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("under %d idle sessions the developer's tunnel could not register its route for %s: %v", 2*MaxControlSessions, time.Since(start), err)
		}
		time.Sleep(time.Second)
	}
	defer dev.Close()
	t.Logf("the developer's tunnel registered after %s", time.Since(start))

	// A query is answered under the attack.
	q, err := ln.client()
	if err != nil {
		t.Fatal(err)
	}
	routes, err := q.Routes()
	q.Close()
	if err != nil || len(routes) != 1 {
		t.Errorf("status under the attack: %v %v, want the developer's route", routes, err)
	}

	// A second wave does not close the tunnel that holds a route.
	wave(2 * MaxControlSessions)
	if _, err := dev.Routes(); err != nil {
		t.Errorf("the developer's tunnel after a second wave of %d sessions: %v", 2*MaxControlSessions, err)
	}

	// The sessions that hold nothing end, the asking ones included
	// (closed for newcomers or, once they stop, for holding nothing):
	// the once-askers within IdleControlSession and a tick.
	for i, c := range attack {
		if i%2 == 0 && !closedWithin(c, IdleControlSession+2*time.Second) {
			t.Errorf("attack session %d holds nothing and is still open after %s", i, IdleControlSession+2*time.Second)
			break
		}
	}
	if got := table.List(); len(got) != 1 {
		t.Errorf("routes at the end: %v, want the developer's only", got)
	}
	if _, err := dev.Routes(); err != nil {
		t.Errorf("the developer's tunnel at the end: %v", err)
	}
}

// A session that holds a route is never closed for another: with
// MaxControlSessions tunnels that hold routes, the next connection is
// closed at once, and a tunnel that leaves makes room again.
func TestControlSessionsBounded(t *testing.T) {
	srv := &Server{Pod: "p1", Routes: &fakeTable{routes: map[string]DialFunc{}}}
	ctx, cancel := context.WithCancel(context.Background())
	ln := newPipeListener()
	served := make(chan struct{})
	go func() { _ = srv.Serve(ctx, ln); close(served) }()
	var held []*Client
	defer func() {
		cancel()
		for _, c := range held {
			c.Close()
		}
		<-served
	}()
	register := func(i int) (*Client, error) {
		c, err := ln.client()
		if err != nil {
			return nil, err
		}
		if _, err := c.Register(route.Route{Header: "x-dev", Value: fmt.Sprint("dev-", i)}); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	for i := range MaxControlSessions {
		c, err := register(i)
		if err != nil {
			t.Fatalf("tunnel %d: %v", i+1, err)
		}
		held = append(held, c)
	}
	if c, err := register(MaxControlSessions); err == nil {
		c.Close()
		t.Fatalf("tunnel %d was served", MaxControlSessions+1)
	}
	for i, c := range held {
		if _, err := c.Routes(); err != nil {
			t.Fatalf("tunnel %d after a refused one: %v", i+1, err)
		}
	}
	held[0].Close()
	held = held[1:]
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := register(MaxControlSessions)
		if err == nil {
			held = append(held, c)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a freed slot does not serve: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A session with a call in flight (a register on its way, a probe) is not
// the one closed for a newcomer while a session that only waits is there:
// a probe answered after 2*MaxControlSessions queries came and went still
// reaches its caller.
func TestCallInFlightOutlastsNewcomers(t *testing.T) {
	release := make(chan struct{})
	srv := &Server{Pod: "p1", Routes: &fakeTable{routes: map[string]DialFunc{}},
		Probe: func(ctx context.Context, url string) (string, error) {
			select {
			case <-release:
				return "p1", nil
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}}
	ctx, cancel := context.WithCancel(context.Background())
	ln := newPipeListener()
	served := make(chan struct{})
	go func() { _ = srv.Serve(ctx, ln); close(served) }()
	var opened []*Client
	defer func() {
		cancel()
		for _, c := range opened {
			c.Close()
		}
		<-served
	}()
	c, err := ln.client()
	if err != nil {
		t.Fatal(err)
	}
	opened = append(opened, c)
	probed := make(chan error, 1)
	go func() {
		_, err := c.Probe("http://10.96.0.10/")
		probed <- err
	}()
	for i := range 2 * MaxControlSessions {
		q, err := ln.client()
		if err != nil {
			t.Fatalf("query %d: %v", i+1, err)
		}
		opened = append(opened, q)
		if _, err := q.Routes(); err != nil {
			t.Fatalf("query %d: %v", i+1, err)
		}
	}
	close(release)
	select {
	case err := <-probed:
		if err != nil {
			t.Errorf("the probe after %d queries: %v", 2*MaxControlSessions, err)
		}
	case <-time.After(10 * time.Second):
		t.Error("the probe got no answer in 10 s")
	}
}

// Registering again under the same key replaces the session's route
// instead of piling up (each kept the replaced route's transports alive:
// about 1.4 kB a registration, a sidecar's memory after some 185,000), and
// a session holds at most maxSessionRoutes routes.
func TestSessionRoutesBounded(t *testing.T) {
	srv := &Server{Pod: "p1", Routes: replacingTable{}}
	a, b := net.Pipe()
	go srv.ServeConn(context.Background(), a)
	c, err := NewClient(b)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	key := strings.Repeat("k", 40)
	for i := range 1000 {
		if _, err := c.Register(route.Route{Header: "X-Dev", Value: "alice", Client: key}); err != nil {
			t.Fatalf("register #%d: %v", i, err)
		}
	}
	srv.mu.Lock()
	var held int
	for cs := range srv.sessions {
		cs.mu.Lock()
		held += len(cs.routes) + len(cs.removes)
		cs.mu.Unlock()
	}
	srv.mu.Unlock()
	if held != 2 {
		t.Fatalf("after 1,000 registrations of one route the session holds %d entries, want 1 route and its removal", held)
	}
	for i := range maxSessionRoutes {
		_, err := c.Register(route.Route{Header: "X-Dev", Value: fmt.Sprint("v", i), Client: fmt.Sprint(key, i)})
		if i < maxSessionRoutes-1 && err != nil {
			t.Fatalf("route %d: %v", i+1, err)
		}
		if i == maxSessionRoutes-1 && !errors.Is(err, ErrBadRequest) {
			t.Fatalf("route %d: %v, want a bad request past the bound", i+2, err)
		}
	}
}

// replacingTable takes every route, as a table does a registration again
// under the same key.
type replacingTable struct{}

func (replacingTable) Add(route.Route, DialFunc) (func(), error) { return func() {}, nil }
func (replacingTable) List() []route.Route                       { return nil }
