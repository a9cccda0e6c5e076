package sandbox

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// probeArg makes RunInit check that the namespaces can be set up, and exit.
const probeArg = "probe"

// RunInit is the namespaces' first process: called when the plugin runs
// as InitCommand. It sets the namespaces up as the plugin says over
// descriptor 3, starts the command, passes signals on, connects the
// plugin to the sandbox's loopback, reaps every process, and exits with
// the command's code. It never returns.
func RunInit(args []string) {
	if len(args) > 0 && args[0] == probeArg {
		if err := probe(); err != nil {
			fmt.Fprintf(os.Stderr, "%v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	// Dies with the plugin even if the plugin's thread that started it
	// was gone (PR_SET_PDEATHSIG follows the thread, not the process).
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0)
	c, err := newCtl(os.NewFile(3, "sandbox-ctl"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubectl-intercept sandbox: %v\n", err)
		os.Exit(1)
	}
	os.Exit(runInit(c))
}

func runInit(c *ctl) int {
	buf := make([]byte, maxMessage)
	m, _, err := c.recv(buf)
	if err != nil || m.Op != opConfig || m.Config == nil {
		return 1
	}
	cfg := m.Config
	fail := func(err error) int {
		_ = c.send(message{Op: opTUN, Error: err.Error()}, -1)
		return 1
	}
	if err := setUpFiles(cfg); err != nil {
		return fail(err)
	}
	if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil && cfg.Hostname != "" {
		return fail(fmt.Errorf("setting the hostname to %s: %w", cfg.Hostname, err))
	}
	tun, err := setUpNetwork(cfg)
	if err != nil {
		return fail(err)
	}
	if err := c.send(message{Op: opTUN}, tun); err != nil {
		return 1
	}
	unix.Close(tun)
	for i, port := range cfg.Loopback {
		addr := "127.0.0.1"
		if i < len(cfg.LoopbackAddrs) && cfg.LoopbackAddrs[i] != "" {
			addr = cfg.LoopbackAddrs[i]
		}
		fd, err := loopbackListener(addr, port)
		if err != nil {
			return fail(fmt.Errorf("--local %s:%d: %w (does the port's number clash with the -l port?)", addr, port, err))
		}
		err = c.send(message{Op: opListen, Port: port}, fd)
		unix.Close(fd)
		if err != nil {
			return 1
		}
	}
	if err := c.send(message{Op: opReady}, -1); err != nil {
		return 1
	}
	if m, _, err := c.recv(buf); err != nil || m.Op != opGo {
		return 1
	}
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGCHLD)
	ignoreCrashSignals()
	pid, code, err := startCommand(cfg)
	if err != nil {
		_ = c.send(message{Op: opStarted, Error: err.Error(), Code: code}, -1)
		return code
	}
	if err := c.send(message{Op: opStarted, Pid: pid}, -1); err != nil {
		return 1
	}
	quietOutput()
	go serveCtl(c, pid)
	for {
		for {
			var ws unix.WaitStatus
			got, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if got <= 0 || err != nil {
				break
			}
			if got == pid {
				if ws.Signaled() {
					return 128 + int(ws.Signal())
				}
				return ws.ExitStatus()
			}
		}
		switch sig := <-signals; sig {
		case syscall.SIGCHLD:
		case syscall.SIGINT:
			// From the terminal, which gave it to the command too.
		default:
			_ = unix.Kill(pid, sig.(syscall.Signal))
		}
	}
}

// ignoreCrashSignals keeps the command from ending the first process
// with a signal: the kernel shields a PID namespace's first process only
// from signals it has no handler for, and the Go runtime handles them
// all, crashing on SIGABRT, SIGSEGV and the like. Those are ignored when
// they come from a process: taken and dropped (signal.Ignore would leave
// SIGABRT ignored for the command too, across exec); a real fault still
// crashes.
func ignoreCrashSignals() {
	dropped := make(chan os.Signal, 16)
	signal.Notify(dropped, syscall.SIGABRT, syscall.SIGILL, syscall.SIGTRAP, syscall.SIGSYS,
		syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGSTKFLT)
	go func() {
		for range dropped {
		}
	}()
}

// quietOutput sends the first process's own output nowhere once the
// command has its descriptors, so that nothing of it (a crash's stacks)
// lands on the command's stdout or stderr.
func quietOutput() {
	if null, err := unix.Open("/dev/null", unix.O_WRONLY|unix.O_CLOEXEC, 0); err == nil {
		_ = unix.Dup3(null, 1, 0)
		_ = unix.Dup3(null, 2, 0)
		unix.Close(null)
	}
}

// serveCtl answers the plugin until it goes away; then the sandbox ends.
func serveCtl(c *ctl, pid int) {
	buf := make([]byte, 64<<10)
	for {
		m, fd, err := c.recv(buf)
		if fd >= 0 {
			unix.Close(fd)
		}
		if err != nil {
			// The plugin is gone: nothing of the sandbox may outlive it.
			os.Exit(128 + int(syscall.SIGKILL))
		}
		switch m.Op {
		case opSignal:
			_ = unix.Kill(pid, syscall.Signal(m.Signal))
		case opDial:
			go func(id uint64, port int) {
				fd, err := dialLoopback(port)
				if err != nil {
					_ = c.send(message{Op: opDialed, ID: id, Error: err.Error()}, -1)
					return
				}
				_ = c.send(message{Op: opDialed, ID: id}, fd)
				unix.Close(fd)
			}(m.ID, m.Port)
		}
	}
}

// dialLoopback connects to 127.0.0.1:port in the sandbox and returns the
// connection's descriptor for the plugin.
func dialLoopback(port int) (int, error) {
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return -1, err
	}
	defer conn.Close()
	f, err := conn.(*net.TCPConn).File()
	if err != nil {
		return -1, err
	}
	defer f.Close()
	return unix.Dup(int(f.Fd()))
}

func loopbackListener(addr string, port int) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
	if err != nil {
		return -1, err
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		return -1, err
	}
	defer f.Close()
	return unix.Dup(int(f.Fd()))
}

// startCommand starts the command as the user, without the capabilities
// the first process holds in the namespaces.
func startCommand(cfg *initConfig) (int, int, error) {
	path, err := lookPath(cfg.Argv[0], cfg.Env)
	if err != nil {
		code := 127
		if errors.Is(err, os.ErrPermission) {
			code = 126
		}
		return 0, code, fmt.Errorf("%s: command not found (%w)", cfg.Argv[0], err)
	}
	// Capabilities are per thread: drop the ambient ones on the thread
	// that forks, so the command runs without them.
	runtime.LockOSThread()
	_ = unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
	p, err := os.StartProcess(path, cfg.Argv, &os.ProcAttr{
		Dir:   cfg.Dir,
		Env:   cfg.Env,
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
	})
	// The thread is not given back: it no longer has the capabilities
	// the first process needs.
	if err != nil {
		code := 126
		if errors.Is(err, os.ErrNotExist) {
			code = 127
		}
		return 0, code, fmt.Errorf("starting %s: %w", cfg.Argv[0], err)
	}
	return p.Pid, 0, nil
}

// lookPath finds name in the command's PATH.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, executable(name)
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	err := os.ErrNotExist
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		e := executable(p)
		if e == nil {
			return p, nil
		}
		if errors.Is(e, os.ErrPermission) {
			err = e
		}
	}
	return "", err
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return os.ErrPermission
	}
	return nil
}

// probe does what Start does that a kernel may lack (a TUN device, a
// mount, the new mount API and mount_setattr, sethostname) and tells
// whether it could; each failure names what the kernel needs.
func probe() error {
	fd, err := openTUN("probe0")
	if err != nil {
		return fmt.Errorf("a TUN device: %w", err)
	}
	unix.Close(fd)
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("a mount: %w", err)
	}
	fsfd, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return kernelLacks("fsopen (the new mount API)", "5.2", err)
	}
	defer unix.Close(fsfd)
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return kernelLacks("fsconfig (the new mount API)", "5.2", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return kernelLacks("fsmount (the new mount API)", "5.2", err)
	}
	defer unix.Close(mfd)
	if err := unix.MountSetattr(mfd, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
		return kernelLacks("mount_setattr", "5.12", err)
	}
	if err := unix.Sethostname([]byte("probe")); err != nil {
		return fmt.Errorf("setting the hostname in the sandbox's namespace: %w", err)
	}
	return nil
}

// kernelLacks is a probe's failure at a system call newer kernels have.
func kernelLacks(call, version string, err error) error {
	if errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("this kernel has no %s, which the sandbox needs: Linux %s or later has it", call, version)
	}
	return fmt.Errorf("%s: %w", call, err)
}
