package inspect_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/inspect"
)

// A WebSocket works end to end through the forwarder and is recorded as a
// 101 with the bytes each way.
func TestForwardPassesUpgrade(t *testing.T) {
	local := app(t, func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if c.Write(r.Context(), typ, append([]byte("echo: "), msg...)) != nil {
				return
			}
		}
	})
	base, store := forwarding(t, local)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws", nil) //nolint:bodyclose // websocket.Dial leaves resp.Body nil on success: nothing to close
	if err != nil {
		t.Fatalf("WebSocket through the forwarder: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Errorf("handshake status %d, want 101", resp.StatusCode)
	}
	for _, m := range []string{"one", "two"} {
		if err := c.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil || string(got) != "echo: "+m {
			t.Fatalf("read %q, %v; want %q", got, err, "echo: "+m)
		}
	}
	waitFor(t, store, "the upgrade recorded as 101", func(l []inspect.Exchange) bool { return len(l) == 1 && l[0].Status == 101 })
	if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Errorf("close handshake through the forwarder: %v", err)
	}

	ex := waitDone(t, store, 1)[0]
	if ex.Status != 101 || ex.Path != "/ws" || !strings.EqualFold(ex.ResponseHeader.Get("Upgrade"), "websocket") {
		t.Errorf("recorded %d %s, Upgrade %q", ex.Status, ex.Path, ex.ResponseHeader.Get("Upgrade"))
	}
	// Two masked frames of 3 bytes (9 each) plus a close frame went up,
	// two frames of 9 bytes (11 each) came down.
	if ex.RequestSize < 18 || ex.ResponseSize < 22 {
		t.Errorf("recorded %d bytes up and %d down, want at least 18 and 22", ex.RequestSize, ex.ResponseSize)
	}
}
