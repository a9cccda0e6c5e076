package tap

import (
	"bytes"
	"testing"
)

// Whatever a peer sends, decoding never panics, and what it accepts is an
// exchange the sender's side would have encoded the same way.
func FuzzUnmarshal(f *testing.F) {
	good, err := Marshal(sample())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		ex, err := Unmarshal(p)
		if err != nil {
			return
		}
		again, err := Marshal(ex)
		if err != nil {
			t.Fatalf("accepted an exchange that cannot be sent again: %v", err)
		}
		back, err := Unmarshal(again)
		if err != nil {
			t.Fatalf("re-encoded exchange refused: %v", err)
		}
		if back.Request.Method != ex.Request.Method || back.Request.Target != ex.Request.Target ||
			back.Response.Status != ex.Response.Status || !bytes.Equal(back.Response.Body.Data, ex.Response.Body.Data) ||
			len(back.Request.Header) != len(ex.Request.Header) {
			t.Fatalf("round trip changed the exchange: %+v then %+v", ex, back)
		}
	})
}
