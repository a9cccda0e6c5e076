package procid

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/windows"
)

const stillActive = 259

// inspect opens the process: its creation time (100 ns since 1601), which
// a reused pid does not share, and its image's path.
func inspect(pid int) (Info, error) {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if errors.Is(err, windows.ERROR_INVALID_PARAMETER) {
		return Info{}, ErrNoProcess
	}
	if errors.Is(err, windows.ERROR_ACCESS_DENIED) {
		return Info{PID: pid}, errOtherUser
	}
	if err != nil {
		return Info{PID: pid}, err
	}
	defer windows.CloseHandle(h)
	return inspectHandle(pid, h)
}

func inspectHandle(pid int, h windows.Handle) (Info, error) {
	var code uint32
	if err := windows.GetExitCodeProcess(h, &code); err == nil && code != stillActive {
		return Info{}, ErrNoProcess
	}
	var created, exited, kernel, user windows.Filetime
	if err := windows.GetProcessTimes(h, &created, &exited, &kernel, &user); err != nil {
		return Info{PID: pid}, err
	}
	info := Info{PID: pid, Start: strconv.FormatInt(created.Nanoseconds()/100, 10)}
	buf := make([]uint16, windows.MAX_LONG_PATH)
	n := uint32(len(buf))
	if err := windows.QueryFullProcessImageName(h, 0, &buf[0], &n); err == nil {
		info.Exe = windows.UTF16ToString(buf[:n])
		info.Name = filepath.Base(info.Exe)
	}
	return info, nil
}

// signalIfStarted ends pid if it still started at start, through one
// handle, so the pid cannot change hands between the check and the end.
// A console-less process has no SIGTERM on Windows.
func signalIfStarted(pid int, start string) error {
	h, err := windows.OpenProcess(windows.PROCESS_TERMINATE|windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if errors.Is(err, windows.ERROR_INVALID_PARAMETER) {
		return ErrNoProcess
	}
	if err != nil {
		return err
	}
	defer windows.CloseHandle(h)
	info, err := inspectHandle(pid, h)
	if err != nil {
		return err
	}
	if info.Start != start {
		return fmt.Errorf("pid %d changed hands before it was ended", pid)
	}
	return windows.TerminateProcess(h, 1)
}

// peerPID: Windows' AF_UNIX does not say who listens without an ioctl; the
// token's proof and the creation time stand alone.
func peerPID(*net.UnixConn) (int, bool) { return 0, false }

func refused(err error) bool { return errors.Is(err, windows.WSAECONNREFUSED) }
