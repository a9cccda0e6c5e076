package tunnel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// takenTable refuses every route as taken, the way the sidecar's table
// words it.
type takenTable struct{}

func (takenTable) Add(r route.Route, _ DialFunc) (func(), error) {
	return nil, fmt.Errorf("%w: %s is intercepted by bob@laptop; pick another header value with -x", ErrConflict, r)
}

func (takenTable) List() []route.Route { return nil }

// The CLI tells a taken route, a malformed call and an operation the
// sidecar does not know apart with errors.Is, whatever the message says.
func TestControlErrorsCarryACode(t *testing.T) {
	a, b := net.Pipe()
	srv := &Server{Pod: "p", Routes: takenTable{}}
	go srv.ServeConn(context.Background(), a)
	c, err := NewClient(b)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	_, err = c.Register(route.Route{Header: "X-Dev", Value: "alice"})
	if !errors.Is(err, ErrConflict) || errors.Is(err, ErrBadRequest) {
		t.Errorf("register of a taken route: %v (want ErrConflict only)", err)
	}
	if _, err := c.call(Request{Op: "register"}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("register without a route: %v (want ErrBadRequest)", err)
	}
	if _, err := c.call(Request{Op: "teleport"}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("unknown operation: %v (want ErrUnsupported)", err)
	}
	if _, err := c.Seen("0123456789abcdef"); !errors.Is(err, ErrUnsupported) {
		t.Errorf("seen on a sidecar that cannot watch: %v (want ErrUnsupported)", err)
	}
	var re *RemoteError
	if _, err := c.Probe("http://x/"); !errors.As(err, &re) || re.Code != CodeUnsupported {
		t.Errorf("probe on a sidecar that cannot probe: %v", err)
	}
}

// An answer with a code this CLI does not know is a plain failure.
func TestUnknownCodeIsAFailure(t *testing.T) {
	r := Response{Error: "boom", Code: "from-the-future"}
	if err := r.err(); !errors.Is(err, ErrFailed) || err.Error() != "boom" {
		t.Errorf("got %v", err)
	}
	if (&Response{}).err() != nil {
		t.Error("a success carries an error")
	}
}

// The doctor's send requests only a Service: by ClusterIP or cluster DNS
// name, never the pod's own ports, a cloud's metadata endpoint or the
// internet.
func TestSendOnlyToAService(t *testing.T) {
	for _, u := range []string{"http://10.96.0.12:8080/checkout", "http://front.shop.svc/", "http://front.shop.svc.cluster.local:80/x"} {
		if err := sendable(u); err != nil {
			t.Errorf("%s refused: %v", u, err)
		}
	}
	for _, u := range []string{"http://127.0.0.1:18081/", "http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://0.0.0.0/",
		"https://10.96.0.12/", "http://example.com/", "http://u@10.96.0.12/", "file:///etc/passwd"} {
		if err := sendable(u); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: %v, want refused", u, err)
		}
	}
}
