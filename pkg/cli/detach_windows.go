//go:build windows

package cli

import (
	"os"
	"syscall"
)

// detachedAttr starts the background intercept without a console and in its
// own process group, so closing the terminal does not end it.
func detachedAttr() *syscall.SysProcAttr {
	const detachedProcess = 0x00000008
	return &syscall.SysProcAttr{CreationFlags: syscall.CREATE_NEW_PROCESS_GROUP | detachedProcess}
}

func alive(pid int) bool {
	const stillActive = 259
	h, err := syscall.OpenProcess(syscall.PROCESS_QUERY_INFORMATION, false, uint32(pid))
	if err != nil {
		return false
	}
	defer syscall.CloseHandle(h)
	var code uint32
	return syscall.GetExitCodeProcess(h, &code) == nil && code == stillActive
}

// terminate ends the background intercept. Windows has no SIGTERM for a
// console-less process, so it cannot leave by itself: its sidecar route
// fails open when the tunnel drops, and close restores the Service next.
func terminate(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}
