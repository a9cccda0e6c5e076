package local

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// This machine's record of its intercepts: written, listed by context,
// forgotten; a file that does not read as a record is skipped.
func TestLocalIntercepts(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	a := Intercept{Context: "dev", Namespace: "shop", Service: "web", Session: "abc123", PID: 1, Started: recordedAt}
	b := Intercept{Context: "dev", Namespace: "team", Service: "api", Session: "def456", PID: 2, Started: recordedAt.Add(time.Second)}
	c := Intercept{Context: "prod", Namespace: "shop", Service: "web", Session: "ghi789", PID: 3, Started: recordedAt}
	for _, li := range []Intercept{b, a, c} {
		if err := Remember(li.Key(), li); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(StateDir(), "junk.json"), []byte(`{"context":"dev","namespace":"../x","service":"a"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := List("dev")
	if err != nil || len(got) != 2 || got[0] != a || got[1] != b {
		t.Fatalf("got %+v, %v", got, err)
	}
	Forget(a.Key())
	if got, _ := List("dev"); len(got) != 1 || got[0] != b {
		t.Fatalf("after forgetting: %+v", got)
	}
}

var recordedAt = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
