package procid

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	"golang.org/x/sys/unix"
)

// inspect asks sysctl kern.proc.pid: the start time (seconds and
// microseconds), which a reused pid does not share, and the short name.
func inspect(pid int) (Info, error) {
	kp, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if errors.Is(err, unix.EIO) || errors.Is(err, unix.ESRCH) {
		return Info{}, ErrNoProcess // no such pid: the answer is empty
	}
	if err != nil {
		return Info{}, err
	}
	if kp.Proc.P_stat == 5 { // SZOMB: ended, only its exit status is left
		return Info{}, ErrNoProcess
	}
	t := kp.Proc.P_starttime
	return Info{PID: pid, Start: strconv.FormatInt(int64(t.Sec)*1_000_000+int64(t.Usec), 10),
		Name: unix.ByteSliceToString(kp.Proc.P_comm[:])}, nil
}

// signalIfStarted sends SIGTERM to pid if it still started at start.
// macOS has no pidfd: the check and kill(2) follow each other directly.
func signalIfStarted(pid int, start string) error {
	info, err := inspect(pid)
	if err != nil {
		return err
	}
	if info.Start != start {
		return fmt.Errorf("pid %d changed hands before it was signaled", pid)
	}
	return unix.Kill(pid, unix.SIGTERM)
}

// peerPID is the pid at the other end of c (LOCAL_PEERPID).
func peerPID(c *net.UnixConn) (int, bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, false
	}
	var pid int
	var gerr error
	if err := rc.Control(func(fd uintptr) { pid, gerr = unix.GetsockoptInt(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERPID) }); err != nil || gerr != nil {
		return 0, false
	}
	return pid, true
}

func refused(err error) bool { return errors.Is(err, unix.ECONNREFUSED) }
