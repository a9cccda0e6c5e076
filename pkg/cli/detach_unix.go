//go:build !windows

package cli

import "syscall"

// detachedAttr starts the background intercept in its own session, so the
// terminal's hangup and Ctrl-C do not reach it.
func detachedAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// terminate asks the background intercept to leave: it unregisters its
// route and closes its tunnel on SIGTERM.
func terminate(pid int) error { return syscall.Kill(pid, syscall.SIGTERM) }
