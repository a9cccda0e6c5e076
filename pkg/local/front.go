package local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/inspect"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/ngrok"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/httpwire"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// Tunnel kinds for --tunnel.
const (
	TunnelBuiltin = "builtin"
	TunnelNgrok   = "ngrok"
)

// InspectOff is the --inspect value that turns the inspector off.
const InspectOff = "false"

// FrontOptions say what the front serves and where.
type FrontOptions struct {
	// LocalPort is where intercepted requests go (the first port's).
	LocalPort int
	Route     route.Route
	// Tunnel is TunnelBuiltin or TunnelNgrok; PublicPreview asks for an
	// ngrok session for the preview too.
	Tunnel        string
	PublicPreview bool
	// NgrokAuthtoken and NgrokConnectURL (a stand-in service) for ngrok.
	NgrokAuthtoken, NgrokConnectURL string
	// Inspect is the inspector's address, or InspectOff;
	// InspectShowSecrets shows credential headers on its page.
	Inspect            string
	InspectShowSecrets bool
	// For a wiretap (Route.Wiretap): Ignore is what the diff leaves out
	// (--ignore), Record the file the pairs are appended to (--record;
	// "": none).
	Ignore []string
	Record string
}

// Front is the developer's end of intercepted HTTP: requests arrive from
// the built-in tunnel or the ngrok endpoint, are recorded for the
// inspector, and go on to the local port.
type Front struct {
	// handler serves requests arriving through ngrok and replays; Conn
	// the connections arriving through the built-in tunnel (bytes passed
	// on as they came, recorded off the path; HTTP/2 through handler).
	handler http.Handler
	Conn    func(net.Conn)
	tap     *inspect.Tap
	// InspectURL is where the inspector's page is, if it runs;
	// PreviewURL the preview's, if there is one.
	InspectURL, PreviewURL string
	// InspectWarning is said when the inspector is reachable from elsewhere.
	InspectWarning string
	// previewLink is the preview's URL once it serves, for the inspector.
	previewLink atomic.Value
	// Remote is the ngrok endpoint's URL and Secret its secret, if there
	// is one.
	Remote, Secret string
	// agent is the ngrok session, when the tunnel or the preview use it.
	agent   *ngrok.Agent
	servers []*http.Server
	// record is --record's file, closed with the front.
	record *inspect.Recorder
}

// preview is the preview URL for the inspector's page, "" until it serves.
func (f *Front) preview() string {
	s, _ := f.previewLink.Load().(string)
	return s
}

// ShowPreview gives the inspector's page the preview's URL.
func (f *Front) ShowPreview(url string) { f.previewLink.Store(url) }

// OpenFront starts what the intercept needs on this machine before the
// cluster is touched, so a taken port or an unreachable ngrok fails early.
func OpenFront(ctx context.Context, o FrontOptions) (*Front, error) {
	local := net.JoinHostPort("127.0.0.1", strconv.Itoa(o.LocalPort))
	f := &Front{}
	if o.Tunnel == TunnelNgrok || o.PublicPreview {
		a, err := ngrok.Connect(ctx, ngrok.Options{Authtoken: o.NgrokAuthtoken, Timeout: ngrokTimeout, ConnectURL: o.NgrokConnectURL})
		if err != nil {
			return nil, err
		}
		f.agent = a
	}
	if o.Route.WholeConnections() {
		// Raw connections: nothing to record, nowhere but the tunnel. (A
		// narrowed --all route carries HTTP requests, as a marker's does.)
		return f, nil
	}
	store := inspect.NewStore(500)
	f.handler = inspect.NewForwarder(local, o.Route.String(), store)
	tapStore := store
	if o.Inspect == InspectOff {
		tapStore = nil // nobody looks: pass the bytes on, record nothing
	}
	f.tap = inspect.NewTap(local, o.Route.String(), tapStore, httpwire.NewHTTPServer(f.handler))
	f.Conn = f.tap.ServeConn
	if o.Route.Wiretap {
		if err := f.startWiretap(o, store); err != nil {
			f.Close()
			return nil, err
		}
	}
	if o.Inspect != InspectOff {
		ln, err := inspect.Listen(o.Inspect)
		if err != nil {
			return nil, fmt.Errorf("starting the inspector: %w; pick another address with --inspect ADDR or turn it off with --inspect=false", err)
		}
		opts := inspect.UIOptions{ShowSecrets: o.InspectShowSecrets, Preview: f.preview}
		f.InspectURL = "http://" + ln.Addr().String() + "/"
		if a, ok := ln.Addr().(*net.TCPAddr); ok && !a.IP.IsLoopback() {
			// Reachable from other machines: the page shows requests,
			// so it asks for a token only its URL carries.
			opts.Token = httpwire.NewSecret()[:32]
			f.InspectURL += "?token=" + opts.Token
			f.InspectWarning = fmt.Sprintf("the inspector listens on %s, beyond this machine: it shows intercepted requests to whoever has its URL (with the token); --inspect 127.0.0.1:4040 keeps it here", ln.Addr())
		}
		f.serve(ln, inspect.NewUIWith(store, f.handler, opts))
	}
	if o.Tunnel == TunnelNgrok {
		ep, err := f.agent.Listen(ctx, "kubectl-intercept")
		if err != nil {
			f.Close()
			return nil, err
		}
		f.Remote, f.Secret = ep.URL(), httpwire.NewSecret()
		f.serve(ep, httpwire.Guard(f.Secret, f.handler))
	}
	return f, nil
}

// ngrokTimeout bounds the wait for ngrok's service.
const ngrokTimeout = 20 * time.Second

func (f *Front) serve(ln net.Listener, h http.Handler) {
	srv := httpwire.NewHTTPServer(h)
	srv.ReadHeaderTimeout = 30 * time.Second
	f.servers = append(f.servers, srv)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			ln.Close()
		}
	}()
}

// startWiretap makes the front take the sidecar's copies: each goes to
// the local port and is compared with the cluster's answer, kept in store
// and, with o.Record, appended to that file.
func (f *Front) startWiretap(o FrontOptions, store *inspect.Store) error {
	ig, err := inspect.ParseIgnore(o.Ignore)
	if err != nil {
		return err
	}
	wo := inspect.WiretapOptions{Ignore: ig}
	if o.Record != "" {
		if f.record, err = inspect.OpenRecorder(o.Record, o.InspectShowSecrets); err != nil {
			return fmt.Errorf("--record %s: %w", o.Record, err)
		}
		wo.Record = f.record
	}
	f.tap.SetWiretap(inspect.NewWiretap(f.handler, store, wo))
	return nil
}

// Close stops the inspector, the endpoints and the ngrok session.
func (f *Front) Close() {
	for _, s := range f.servers {
		_ = s.Close()
	}
	if f.tap != nil {
		_ = f.tap.Close()
	}
	if f.agent != nil {
		_ = f.agent.Close()
	}
	if f.record != nil {
		_ = f.record.Close()
	}
}
