package podfiles

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Tree is the files written under a root, kept in step with the volumes.
type Tree struct {
	Root string
	// Mark is the content of the root's marker file: what tells a later
	// RemoveMarked (after a crash) that the directory is still this tree.
	Mark    string
	written map[string]File
}

// MarkerName is the file at the root that marks it as a tree of ours.
const MarkerName = ".kubectl-intercept-mount"

// NewTree takes root for the files: it must not exist, or be an empty
// directory, so removing it at the end removes nothing of the user's. A
// symbolic link is refused: the files would go to its target, and the end
// would remove the link alone and leave them there.
func NewTree(root string) (*Tree, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(abs); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return nil, fmt.Errorf("%s is a symbolic link: give a directory itself (the pod's secrets are written there and removed at the end)", abs)
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
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, err
	}
	t := &Tree{Root: abs, Mark: hex.EncodeToString(nonce[:]), written: map[string]File{}}
	if err := os.WriteFile(filepath.Join(abs, MarkerName), []byte(t.Mark+"\n"), 0o400); err != nil {
		return nil, err
	}
	return t, nil
}

// RemoveMarked removes a tree a crashed process left at root: only while
// root is a directory (not a link) whose marker holds mark, so a
// directory the user has made there since is left alone. A root that is
// gone is no error.
func RemoveMarked(root, mark string) error {
	fi, err := os.Lstat(root)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case !fi.IsDir() || !filepath.IsAbs(root):
		return fmt.Errorf("%s is no longer the directory --mount wrote: left alone", root)
	}
	b, err := os.ReadFile(filepath.Join(root, MarkerName))
	if err != nil || mark == "" || strings.TrimSpace(string(b)) != mark {
		return fmt.Errorf("%s no longer holds the files --mount wrote (its marker differs): left alone", root)
	}
	return (&Tree{Root: root}).Remove()
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
