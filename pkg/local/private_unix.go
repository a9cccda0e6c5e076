//go:build !windows

package local

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// detachedAttr starts the background intercept in its own session, so the
// terminal's hangup and Ctrl-C do not reach it.
func detachedAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }

// checkPrivate says why dir is not this user's alone, if it is not: it
// must be a directory (not a link) owned by this user that no one else
// may write, read or enter.
func checkPrivate(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return errors.New("not a directory")
	case ok && int(st.Uid) != os.Getuid():
		return fmt.Errorf("owned by uid %d", st.Uid)
	case fi.Mode().Perm()&0o077 != 0:
		// Ours but open to others: close it, then it is private.
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("mode %#o lets others in", fi.Mode().Perm())
		}
	}
	return nil
}
