package portforward

import (
	"bytes"
	"encoding/binary"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	gwebsocket "github.com/gorilla/websocket"
	"k8s.io/client-go/tools/portforward"
)

// frame is a SPDY frame: the 8-byte header ends with the length of the
// rest (flags in the byte before it).
func frame(first uint32, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, first)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}

// Every frame leaves as one WebSocket message, however it was cut into
// writes, and two frames in one write leave as two.
func TestSPDYFramesOneMessageEach(t *testing.T) {
	got := make(chan []byte, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&gwebsocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				return
			}
			got <- msg
		}
	}))
	defer srv.Close()
	ws, resp, err := gwebsocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	c := &spdyFrames{TunnelingConnection: portforward.NewTunnelingConnection("test", ws), ws: ws}
	defer c.Close()

	data := frame(7, bytes.Repeat([]byte("d"), 100_000))     // a data frame of stream 7
	empty := frame(7, nil)                                   // its FIN
	ping := frame(0x80030006, []byte{0, 0, 0, 9})            // a control frame (PING)
	syn := frame(0x80030001, bytes.Repeat([]byte("h"), 300)) // a control frame with a body
	for _, tc := range []struct {
		name   string
		writes [][]byte
		want   [][]byte
	}{
		{"header field by field, then the data", [][]byte{data[:4], data[4:8], data[8:]}, [][]byte{data}},
		{"a frame without data", [][]byte{empty[:4], empty[4:]}, [][]byte{empty}},
		{"a control frame in odd pieces", [][]byte{syn[:2], syn[2:9], syn[9:100], syn[100:]}, [][]byte{syn}},
		{"two frames in one write", [][]byte{append(append([]byte{}, ping...), empty...)}, [][]byte{ping, empty}},
		{"a frame ending in the write that starts the next", [][]byte{ping[:3], append(append([]byte{}, ping[3:]...), syn[:5]...), syn[5:]}, [][]byte{ping, syn}},
	} {
		for _, w := range tc.writes {
			if n, err := c.Write(w); err != nil || n != len(w) {
				t.Fatalf("%s: write of %d: %d, %v", tc.name, len(w), n, err)
			}
		}
		for i, want := range tc.want {
			select {
			case m := <-got:
				if !bytes.Equal(m, want) {
					t.Fatalf("%s: message %d is %d bytes, want the frame of %d", tc.name, i, len(m), len(want))
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: message %d never came", tc.name, i)
			}
		}
		select {
		case m := <-got:
			t.Fatalf("%s: an extra message of %d bytes", tc.name, len(m))
		case <-time.After(20 * time.Millisecond):
		}
	}
}
