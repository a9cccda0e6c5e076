// Package cmd holds one package per command; this test keeps them to
// parsing, asking the packages below and printing.
package cmd

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	_ "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/internal/golden" // -update, which go test ./pkg/cmd/... passes to every package
)

// The commands read no cluster state themselves: what an intercept is,
// whether it is live and which pods are its own is pkg/cluster/session's, and
// watching the cluster is pkg/cluster/session's or pkg/local's. So no command
// imports an informer, a cache or a field selector, and none reads the
// record an intercept keeps in its annotation.
func TestCommandsHoldNoClusterLogic(t *testing.T) {
	bannedImports := []string{"k8s.io/client-go/informers", "k8s.io/client-go/tools/cache", "k8s.io/apimachinery/pkg/fields"}
	bannedWords := []string{"AnnotationRecord", "RecordAnnotation", "intercept.kubectl.dev/" + "record"}
	files := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		files++
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, src, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			for _, banned := range bannedImports {
				if p == banned || strings.HasPrefix(p, banned+"/") {
					t.Errorf("%s imports %s: watching the cluster belongs in pkg/cluster/session or pkg/local", path, p)
				}
			}
		}
		for _, word := range bannedWords {
			if strings.Contains(string(src), word) {
				t.Errorf("%s mentions %s: reading an intercept's record belongs in pkg/cluster/session", path, word)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 10 {
		t.Fatalf("looked at %d files only: the test no longer finds the commands", files)
	}
}
