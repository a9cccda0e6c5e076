package ngrok

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// Without a token nothing is attempted, and the error says where to get one.
func TestListenNgrokNeedsAuthtoken(t *testing.T) {
	_, err := Connect(context.Background(), Options{Timeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), EnvAuthtoken) {
		t.Fatalf("err = %v, want one naming %s", err, EnvAuthtoken)
	}
}

// ngrok's agent retries an unreachable service forever; Listen gives
// up after its timeout and says what to check.
func TestListenNgrokGivesUp(t *testing.T) {
	// A stand-in for ngrok's service that accepts and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()

	start := time.Now()
	_, err = Connect(context.Background(), Options{Authtoken: "2fake_token", Timeout: 2 * time.Second, ConnectURL: ln.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), "could not be reached within 2s") {
		t.Fatalf("err = %v", err)
	}
	if waited := time.Since(start); waited > 10*time.Second {
		t.Fatalf("gave up after %s, want about 2s", waited)
	}
}
