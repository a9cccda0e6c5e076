package inspect

import (
	"fmt"
	"net"
	"strconv"
)

// DefaultAddr is where the inspector listens unless told otherwise.
const DefaultAddr = "127.0.0.1:4040"

// listenTries is how many ports Listen tries, from the one asked for up:
// enough for a few intercepts running side by side.
const listenTries = 21

// Listen opens the inspector's listener on addr (DefaultAddr when empty).
// If the port is taken, by the inspector of another intercept say, it tries
// the next ones, up to 20 higher; the listener's Addr says which it got.
//
// The page shows request bodies, so Listen binds only what it was asked:
// an address without a host (":4040") means loopback, not every interface.
// Pass "0.0.0.0:4040" to be reached from elsewhere on purpose.
func Listen(addr string) (net.Listener, error) {
	host, port, err := listenPlan(addr)
	if err != nil {
		return nil, err
	}
	if port == 0 {
		return net.Listen("tcp", net.JoinHostPort(host, "0"))
	}
	last := min(port+listenTries-1, 65535)
	for p := port; p <= last; p++ {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err == nil {
			return ln, nil
		}
		if !addrInUse(err) {
			return nil, fmt.Errorf("inspector: listening on %s: %w", net.JoinHostPort(host, strconv.Itoa(p)), err)
		}
	}
	return nil, fmt.Errorf("inspector: ports %d to %d on %s are all in use; stop what holds them or choose another address for the inspector", port, last, host)
}

// listenPlan splits addr into the host to bind (loopback unless named) and
// the first port to try.
func listenPlan(addr string) (string, int, error) {
	if addr == "" {
		addr = DefaultAddr
	}
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("inspector address %q: %w; write it as host:port, e.g. %s", addr, err, DefaultAddr)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("inspector address %q: the port must be a number from 0 to 65535, e.g. %s", addr, DefaultAddr)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return host, port, nil
}
