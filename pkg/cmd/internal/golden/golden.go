// Package golden compares what the commands print for a person with
// testdata/NAME.golden; after an intended change, `go test ./pkg/cmd/...
// -update` rewrites the files and the diff shows what changed. Every test
// package under pkg/cmd imports it, so that -update is a flag each of them
// knows.
package golden

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// Assert compares got with testdata/NAME.golden of the package under test,
// or writes it there under -update.
func Assert(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./pkg/cmd/... -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s (go test ./pkg/cmd/... -update rewrites it):\n--- got\n%s\n--- want\n%s", name, path, got, want)
	}
}
