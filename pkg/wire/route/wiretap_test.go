package route

import "testing"

// A wiretap takes no request from anyone: it conflicts with no intercept
// and no other wiretap of the same marker, a contest never suspends it,
// and it says what it is.
func TestWiretapNeverConflicts(t *testing.T) {
	tapA := Route{Header: "X-Dev", Value: "alice", Wiretap: true}
	tapB := Route{Header: "x-dev", Value: "alice", Wiretap: true, Owner: "bob"}
	icpt := Route{Header: "X-Dev", Value: "alice"}
	all := Route{All: true}
	for _, pair := range [][2]Route{{tapA, tapB}, {tapA, icpt}, {icpt, tapA}, {all, tapA}, {tapA, all}} {
		if pair[0].Conflicts(pair[1]) || pair[0].Takes(pair[1]) {
			t.Errorf("%s conflicts with %s", pair[0], pair[1])
		}
	}
	if got, want := tapA.String(), "X-Dev:alice (wiretap)"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if err := (Route{Header: "X-Dev", Value: "a", Wiretap: true, Remote: "https://x.ngrok.app", Secret: "0123456789abcdef0123456789abcdef"}).Validate(); err == nil {
		t.Error("a wiretap through a remote endpoint accepted")
	}
	if err := (Route{All: true, Wiretap: true, PathPrefix: "/api/"}).Validate(); err != nil {
		t.Errorf("a wiretap of every request under /api/ refused: %v", err)
	}
}
