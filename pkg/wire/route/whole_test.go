package route

import "testing"

// --all takes whole connections only when nothing narrows it and it is not
// a wiretap: a wiretap of every request must read them as HTTP to copy
// them.
func TestWholeConnections(t *testing.T) {
	for _, c := range []struct {
		r    Route
		want bool
	}{
		{Route{All: true}, true},
		{Route{All: true, PathPrefix: "/api"}, false},
		{Route{All: true, Methods: "POST"}, false},
		{Route{All: true, Wiretap: true}, false},
		{Route{Header: "X-Dev", Value: "alice"}, false},
	} {
		if got := c.r.WholeConnections(); got != c.want {
			t.Errorf("%+v: WholeConnections() = %v, want %v", c.r, got, c.want)
		}
	}
}
