package procid

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// inspect reads /proc/PID/stat: field 22 is the start time in clock ticks
// since boot, which a reused pid does not share.
func inspect(pid int) (Info, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, os.ErrNotExist) {
		return Info{}, ErrNoProcess
	}
	if err != nil {
		return Info{}, err
	}
	// The name (field 2) is in parentheses and may hold spaces and ")".
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return Info{}, fmt.Errorf("unreadable /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(b[end+1:]))
	if len(fields) < 20 {
		return Info{}, fmt.Errorf("unreadable /proc/%d/stat", pid)
	}
	if fields[0] == "Z" {
		return Info{}, ErrNoProcess // ended; only its exit status is left
	}
	info := Info{PID: pid, Start: fields[19], Name: string(b[open+1 : end])}
	if exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); err == nil {
		// A binary replaced while it runs (an upgrade) reads "(deleted)".
		info.Exe = strings.TrimSuffix(exe, " (deleted)")
	}
	return info, nil
}

// signalIfStarted sends SIGTERM to pid if it still started at start,
// through a pidfd, so the pid cannot change hands between the check and
// the signal. Kernels before 5.3 have no pidfd: the check and kill(2)
// follow each other directly.
func signalIfStarted(pid int, start string) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return ErrNoProcess
	}
	if err == nil {
		defer unix.Close(fd)
	}
	info, ierr := inspect(pid)
	if ierr != nil {
		return ierr
	}
	if info.Start != start {
		return fmt.Errorf("pid %d changed hands before it was signaled", pid)
	}
	if err != nil {
		return unix.Kill(pid, unix.SIGTERM)
	}
	return unix.PidfdSendSignal(fd, unix.SIGTERM, nil, 0)
}

// peerPID is the pid that listens on the socket c is connected to, as the
// kernel recorded it at listen(2).
func peerPID(c *net.UnixConn) (int, bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, false
	}
	var cred *unix.Ucred
	var gerr error
	if err := rc.Control(func(fd uintptr) { cred, gerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil || gerr != nil {
		return 0, false
	}
	return int(cred.Pid), true
}

func refused(err error) bool { return errors.Is(err, unix.ECONNREFUSED) }
