//go:build windows

package local

import (
	"errors"
	"os"
	"syscall"
)

// detachedAttr starts the background intercept without a console and in its
// own process group, so closing the terminal does not end it.
func detachedAttr() *syscall.SysProcAttr {
	const detachedProcess = 0x00000008
	return &syscall.SysProcAttr{CreationFlags: syscall.CREATE_NEW_PROCESS_GROUP | detachedProcess}
}

// checkPrivate: the state directory is under the user's profile, which
// Windows' default ACLs keep to the user; its ACL is not inspected.
func checkPrivate(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return errors.New("not a directory")
	}
	return nil
}
