package tunnel

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// `kubectl intercept doctor` asks whether a developer's marker survives the
// way from an entry point to the intercepted Service. It has every sidecar
// of the copy watch for a fresh nonce (op watch), sends one request carrying
// the nonce in a header, a cookie and a baggage member to the entry (from
// the laptop, or from a sidecar with op send), and asks the sidecars which
// of the three reached them (op seen).

// MarkerPrefix starts the value every carrier of a marker has:
// doctor-<nonce>. It tells whoever finds it in a log what sent it.
const MarkerPrefix = "doctor-"

// WatchTTL is how long a sidecar keeps a watch when the session that asked
// for it does not end first.
const WatchTTL = time.Minute

// Carrier names a way a marker travels on a request.
type Carrier string

// The carriers. CarrierOther is the marker's value found in a header of
// another name than the one sent: a service on the way renamed it.
const (
	CarrierHeader  Carrier = "header"
	CarrierCookie  Carrier = "cookie"
	CarrierBaggage Carrier = "baggage"
	CarrierOther   Carrier = "other"
)

// Marker is what the doctor's request carries and what a watch looks for:
// the value MarkerPrefix+Nonce in the header Header, the cookie Cookie and
// the baggage member Baggage (each optional, at least one set).
type Marker struct {
	Nonce   string `json:"nonce"`
	Header  string `json:"header,omitempty"`
	Cookie  string `json:"cookie,omitempty"`
	Baggage string `json:"baggage,omitempty"`
}

// NewMarker returns a marker with a fresh random nonce.
func NewMarker(header, cookie, baggage string) Marker {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return Marker{Nonce: hex.EncodeToString(b), Header: header, Cookie: cookie, Baggage: baggage}
}

// Value is what each carrier holds.
func (m Marker) Value() string { return MarkerPrefix + m.Nonce }

// Carriers lists the carriers the marker uses, header first.
func (m Marker) Carriers() []Carrier {
	var out []Carrier
	for _, c := range []Carrier{CarrierHeader, CarrierCookie, CarrierBaggage} {
		if m.Name(c) != "" {
			out = append(out, c)
		}
	}
	return out
}

// Name is the header name, cookie name or baggage key of carrier c.
func (m Marker) Name(c Carrier) string {
	switch c {
	case CarrierHeader:
		return m.Header
	case CarrierCookie:
		return m.Cookie
	case CarrierBaggage:
		return m.Baggage
	}
	return ""
}

// Validate reports what makes a marker one a sidecar cannot look for.
func (m Marker) Validate() error {
	if len(m.Nonce) < 8 || len(m.Nonce) > 64 {
		return fmt.Errorf("the marker's nonce %q is not 8 to 64 hex digits", m.Nonce)
	}
	if _, err := hex.DecodeString(m.Nonce); err != nil {
		return fmt.Errorf("the marker's nonce %q is not 8 to 64 hex digits", m.Nonce)
	}
	if m.Header == "" && m.Cookie == "" && m.Baggage == "" {
		return errors.New("the marker names no header, cookie or baggage key to carry it")
	}
	if m.Header != "" {
		if err := route.CheckHeader(m.Header, m.Value()); err != nil {
			return err
		}
	}
	if m.Cookie != "" {
		if err := route.CheckCookie(m.Cookie, m.Value()); err != nil {
			return err
		}
	}
	if m.Baggage != "" {
		if err := route.CheckBaggage(m.Baggage, m.Value()); err != nil {
			return err
		}
	}
	return nil
}

// Apply puts the marker on a request's headers: the header, a cookie added
// to the Cookie header, a member added to the baggage header.
func (m Marker) Apply(h http.Header) {
	v := m.Value()
	if m.Header != "" {
		h.Set(m.Header, v)
	}
	if m.Cookie != "" {
		appendList(h, "Cookie", "; ", m.Cookie+"="+v)
	}
	if m.Baggage != "" {
		appendList(h, "Baggage", ",", m.Baggage+"="+v)
	}
}

// appendList adds item to the one line of a list-valued header.
func appendList(h http.Header, name, sep, item string) {
	if old := h.Get(name); old != "" {
		item = old + sep + item
	}
	h.Set(name, item)
}

// Hit is one request that carried a watched marker into a sidecar.
type Hit struct {
	Carrier Carrier `json:"carrier"`
	// Name is the header name, cookie name or baggage key that carried it.
	Name   string    `json:"name"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Pod    string    `json:"pod"`
	Time   time.Time `json:"time"`
}

// Watcher is the sidecar's record of the doctor's watches.
type Watcher interface {
	// Watch records the requests that carry m until stop is called or
	// WatchTTL passes. It refuses when it holds too many watches.
	Watch(m Marker) (stop func(), err error)
	// Seen returns the requests recorded for nonce; ok is false when no
	// watch for it is live.
	Seen(nonce string) (hits []Hit, ok bool)
}

// Watch asks the sidecar to record the requests that carry m for as long as
// this session lives (WatchTTL at most), and returns the sidecar's pod. A
// sidecar too old to watch gives ErrUnsupported.
func (c *Client) Watch(m Marker) (string, error) {
	resp, err := c.call(Request{Op: "watch", Marker: &m})
	if errors.Is(err, ErrUnsupported) {
		return resp.Pod, fmt.Errorf("%w: the sidecar in pod %s cannot watch for the doctor's marker, its image is older than this CLI", ErrUnsupported, resp.Pod)
	}
	return resp.Pod, err
}

// Seen returns the requests the sidecar recorded for the marker with nonce.
func (c *Client) Seen(nonce string) ([]Hit, error) {
	resp, err := c.call(Request{Op: "seen", Nonce: nonce})
	return resp.Hits, err
}

// Send asks the sidecar to request url with method (GET when empty), Host
// host (when set) and the marker m from inside the cluster, and returns
// the answer's status. A sidecar older than methods sends GET.
func (c *Client) Send(method, url, host string, m Marker) (int, error) {
	if method == http.MethodGet {
		method = "" // what every sidecar reads as GET
	}
	resp, err := c.call(Request{Op: "send", Method: method, URL: url, Host: host, Marker: &m})
	return resp.Status, err
}

// sendMethod is the method a sidecar sends for the doctor: GET, or one a
// live route of this sidecar is narrowed to (--method), so that a route
// that takes only POST can be tested through a Service too. Any other is
// refused: a send requests what a route here could take, nothing else.
func sendMethod(method string, routes RouteTable) (string, error) {
	if method == "" || method == http.MethodGet {
		return http.MethodGet, nil
	}
	if m, err := route.ParseMethods(method); err != nil || m != method {
		return "", coded(CodeBadRequest, "send with method %q: not one method in upper case", method)
	}
	if routes != nil {
		for _, r := range routes.List() {
			if r.Methods != "" && r.MethodAllowed(method) {
				return method, nil
			}
		}
	}
	return "", coded(CodeBadRequest, "send with method %s: no route on this sidecar is narrowed to it; the doctor sends GET, or a method a route here takes", method)
}

// SendTimeout bounds one send: a doctor's request should be answered by
// then.
const SendTimeout = 15 * time.Second

// SendMarked sends a bodiless request of method to url with the marker m,
// Host host when set, on a new connection, and returns the answer's
// status. It follows no redirect: the doctor tests the entry it was
// given, and says so when that redirects. The sidecar runs it for a send.
func SendMarked(ctx context.Context, method, url, host string, m Marker) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, SendTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return 0, fmt.Errorf("requesting %s: %w", url, err)
	}
	if host != "" {
		req.Host = host
	}
	m.Apply(req.Header)
	req.Close = true
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("requesting %s: %w", url, err)
	}
	// Read a little of the answer so an entry that acts only once the
	// caller takes it (streams, proxies) does; the rest is not needed.
	_, _ = io.CopyN(io.Discard, resp.Body, 1<<20)
	resp.Body.Close()
	return resp.StatusCode, nil
}
