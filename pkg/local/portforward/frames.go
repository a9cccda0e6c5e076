package portforward

import (
	"net/http"
	"net/url"
	"strings"
	"sync"

	gwebsocket "github.com/gorilla/websocket"
	"k8s.io/apimachinery/pkg/util/httpstream"                     //nolint:staticcheck // client-go's port-forward dialers still return this package's types
	httpstreamspdy "k8s.io/apimachinery/pkg/util/httpstream/spdy" //nolint:staticcheck // its connections are of the httpstream types above
	constants "k8s.io/apimachinery/pkg/util/portforward"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/websocket"
	"k8s.io/klog/v2"
)

// wsDialer dials a port-forward as client-go's SPDY-over-WebSocket dialer
// does (the same upgrade, the same protocols, the same fallback to SPDY
// when it fails), with one difference: each SPDY frame goes out as one
// WebSocket message (spdyFrames), not one message per write.
type wsDialer struct {
	url       *url.URL
	transport http.RoundTripper
	holder    websocket.ConnectionHolder
}

func newWSDialer(u *url.URL, cfg *rest.Config) (*wsDialer, error) {
	transport, holder, err := websocket.RoundTripperFor(cfg)
	if err != nil {
		return nil, err
	}
	return &wsDialer{url: u, transport: transport, holder: holder}, nil
}

func (d *wsDialer) Dial(protocols ...string) (httpstream.Connection, string, error) {
	req, err := http.NewRequest(http.MethodGet, d.url.String(), nil) // WebSocket upgrades are GETs
	if err != nil {
		return nil, "", err
	}
	tunneled := make([]string, 0, len(protocols))
	for _, p := range protocols {
		tunneled = append(tunneled, constants.WebsocketsSPDYTunnelingPrefix+p)
	}
	ws, err := websocket.Negotiate(d.transport, d.holder, req, tunneled...)
	if err != nil {
		return nil, "", err
	}
	protocol := strings.TrimPrefix(ws.Subprotocol(), constants.WebsocketsSPDYTunnelingPrefix)
	tc := portforward.NewTunnelingConnectionWithLogger(klog.Background(), ws)
	conn, err := httpstreamspdy.NewClientConnectionWithPings(&spdyFrames{TunnelingConnection: tc, ws: ws}, portforward.PingPeriod)
	return conn, protocol, err
}

// spdyFrames writes every SPDY frame as one WebSocket message. spdystream
// writes a frame in pieces (a data frame's stream id, then its flags and
// length, then its data: three writes), and client-go's tunneling
// connection makes each write a message of its own, so a frame cost three
// WebSocket frames, three TLS records and three system calls here, and
// three messages for the API server to read; the two headers alone took
// an eighth of the CLI's CPU per request through the tunnel. spdyFrames
// holds the pieces of a frame until it is whole: a frame header is 8 bytes
// and ends with the length of what follows, control and data frames alike.
type spdyFrames struct {
	*portforward.TunnelingConnection
	ws *gwebsocket.Conn

	mu   sync.Mutex
	head []byte // the start of a frame not yet whole
}

const spdyHeader = 8

func (c *spdyFrames) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		if len(c.head) < spdyHeader {
			k := min(spdyHeader-len(c.head), len(p))
			c.head, p = append(c.head, p[:k]...), p[k:]
			if len(c.head) < spdyHeader {
				break
			}
		}
		size := spdyHeader + (int(c.head[5])<<16 | int(c.head[6])<<8 | int(c.head[7]))
		missing := size - len(c.head)
		if len(p) < missing {
			c.head = append(c.head, p...)
			break
		}
		err := c.message(c.head, p[:missing])
		c.head, p = c.head[:0], p[missing:]
		if err != nil {
			return 0, err
		}
	}
	return n, nil
}

// message sends a and b as one binary message.
func (c *spdyFrames) message(a, b []byte) error {
	w, err := c.ws.NextWriter(gwebsocket.BinaryMessage)
	if err != nil {
		return err
	}
	if _, err := w.Write(a); err != nil {
		w.Close()
		return err
	}
	if _, err := w.Write(b); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}
