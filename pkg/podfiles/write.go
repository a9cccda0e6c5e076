package podfiles

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Tree is the files written under a root, kept in step with the volumes.
type Tree struct {
	Root    string
	written map[string]File
}

// NewTree takes root for the files: it must not exist, or be an empty
// directory, so removing it at the end removes nothing of the user's.
func NewTree(root string) (*Tree, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(abs, 0o700); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	case len(entries) > 0:
		return nil, fmt.Errorf("%s is not empty: give a new or empty directory (it is removed when the intercept ends)", abs)
	}
	// The pod's secrets go in: only this user may enter, and a directory
	// someone else owns (who could plant links in it) is refused.
	if err := os.Chmod(abs, 0o700); err != nil {
		return nil, fmt.Errorf("%s: %w (give a directory of your own)", abs, err)
	}
	return &Tree{Root: abs, written: map[string]File{}}, nil
}

// Sync writes files that are new or changed (each replaced at once, never
// half-written) and removes those no longer there. Files are read-only, as
// in the pod.
func (t *Tree) Sync(files []File) (changed int, err error) {
	want := map[string]File{}
	for _, f := range files {
		p, err := t.path(f.Path)
		if err != nil {
			return changed, err
		}
		want[p] = f
	}
	for p, f := range want {
		if old, ok := t.written[p]; ok && bytes.Equal(old.Data, f.Data) && old.Mode == f.Mode {
			continue
		}
		if err := writeFile(p, f); err != nil {
			return changed, err
		}
		t.written[p] = f
		changed++
	}
	for p := range t.written {
		if _, ok := want[p]; !ok {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return changed, err
			}
			delete(t.written, p)
			changed++
		}
	}
	return changed, nil
}

// path is a file's place under the root; a path that would leave it is
// refused.
func (t *Tree) path(rel string) (string, error) {
	p := filepath.Join(t.Root, filepath.FromSlash(rel))
	if r, err := filepath.Rel(t.Root, p); err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) || r == "." {
		return "", fmt.Errorf("volume file %q is not a path inside the mount", rel)
	}
	return p, nil
}

func writeFile(p string, f File) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-")
	if err != nil {
		return err
	}
	_, err = tmp.Write(f.Data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), f.Mode&^0o222)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// Remove deletes the root and everything in it.
func (t *Tree) Remove() error {
	_ = filepath.WalkDir(t.Root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(t.Root)
}
