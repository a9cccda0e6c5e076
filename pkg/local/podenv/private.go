package podenv

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// WritePrivate writes the file at path through write, readable by this user
// only: a new file (0600, O_EXCL|O_NOFOLLOW) in the same directory, renamed
// over path once complete. A file someone else made at path beforehand
// (with mode 0666, or held open) never receives the secrets: the rename
// puts a new file in its place. A symbolic link at path is refused rather
// than followed, and so is anything but a regular file.
func WritePrivate(path string, write func(io.Writer) error) error {
	switch fi, err := os.Lstat(path); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%s is a symbolic link: the environment holds the pod's secrets and is not written through a link; give the path of a regular file or a new one", path)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file; give the path of a regular file or a new one", path)
	}
	var nonce [8]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-"+hex.EncodeToString(nonce[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|oNoFollow, 0o600)
	if err != nil {
		return err
	}
	err = f.Chmod(0o600) // whatever the umask: the user's alone
	if err == nil {
		err = write(f)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
