package inspect

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

// A second inspector (another intercept) gets the next free port.
func TestListenTakesTheNextPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port

	ln, err := Listen("127.0.0.1:" + strconv.Itoa(port))
	if err != nil {
		t.Fatalf("Listen with port %d taken: %v", port, err)
	}
	defer ln.Close()
	got := ln.Addr().(*net.TCPAddr)
	if got.Port <= port || got.Port > port+20 || !got.IP.IsLoopback() {
		t.Errorf("Listen got %v, want loopback on a port in %d..%d", got, port+1, port+20)
	}
}

func TestListenPlan(t *testing.T) {
	cases := []struct {
		addr, host string
		port       int
		err        string
	}{
		{"", "127.0.0.1", 4040, ""},
		{":5050", "127.0.0.1", 5050, ""}, // no host means loopback, not every interface
		{"[::1]:4040", "::1", 4040, ""},
		{"0.0.0.0:4040", "0.0.0.0", 4040, ""}, // asked for on purpose
		{"localhost:0", "localhost", 0, ""},
		{"4040", "", 0, "host:port"},
		{"127.0.0.1:http", "", 0, "port must be a number"},
		{"127.0.0.1:70000", "", 0, "port must be a number"},
	}
	for _, tc := range cases {
		host, port, err := listenPlan(tc.addr)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("listenPlan(%q) error %v, want one saying %q", tc.addr, err, tc.err)
			}
			continue
		}
		if err != nil || host != tc.host || port != tc.port {
			t.Errorf("listenPlan(%q) = %q %d %v, want %q %d", tc.addr, host, port, err, tc.host, tc.port)
		}
	}
}

// An address this machine does not have fails at once with the address in
// the message, rather than walking 20 ports.
func TestListenOtherErrorsStop(t *testing.T) {
	_, err := Listen("192.0.2.1:4040") // TEST-NET-1: on no machine
	if err == nil || !strings.Contains(err.Error(), "192.0.2.1:4040") {
		t.Errorf("Listen on a foreign address: %v", err)
	}
}
