package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// maxFileLines is the most lines a production file of the plugin or the
// sidecar may have: past it, a file holds more than one concern and is
// split by concern (as the HTTP/2 relay is).
const maxFileLines = 600

func TestNoProductionFileOverTheLimit(t *testing.T) {
	for _, root := range []string{"../../pkg", "../../cmd"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "testdata" {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if n := bytes.Count(b, []byte("\n")); n > maxFileLines {
				t.Errorf("%s has %d lines, more than %d: split it by concern", strings.TrimPrefix(path, "../../"), n, maxFileLines)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
