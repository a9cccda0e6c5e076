package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// The sandbox's addresses: from the benchmarking ranges (RFC 2544, RFC
// 5180), which no cluster or home network uses, so that no ClusterIP, pod
// IP or --local destination is shadowed by them.
var (
	sandboxAddr  = netip.MustParseAddr("198.18.0.2")
	sandboxAddr6 = netip.MustParseAddr("2001:2::2")
)

const mtu = 65520

func defaultInitArgs() []string { return []string{"/proc/self/exe", InitCommand} }

// nsAttr creates the namespaces as the caller (or cred), mapping that
// user and group alone, and gives the first process the two capabilities
// it needs in them; it dies with the plugin.
func nsAttr(user *User) *syscall.SysProcAttr {
	uid, gid := os.Getuid(), os.Getgid()
	var cred *syscall.Credential
	if user != nil {
		uid, gid = int(user.UID), int(user.GID)
		cred = &syscall.Credential{Uid: user.UID, Gid: user.GID, NoSetGroups: true}
	}
	return &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWNET |
			syscall.CLONE_NEWUTS | syscall.CLONE_NEWPID | syscall.CLONE_NEWIPC,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}},
		AmbientCaps: []uintptr{capSysAdmin, capNetAdmin},
		Pdeathsig:   syscall.SIGKILL,
		Credential:  cred,
	}
}

const (
	capNetAdmin = 12
	capSysAdmin = 21
)

// Sandbox is the command running in its namespaces.
type Sandbox struct {
	cmd   *exec.Cmd
	ctl   *ctl
	stack *netStack
	// Pid is the command's process id inside the sandbox (its PID namespace).
	Pid int

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan dialed
	done    chan struct{}
	err     error
}

type dialed struct {
	fd  int
	err error
}

// Start creates the namespaces, sets them up and starts the command in
// them. It returns once the command runs, or with the reason it could not.
func Start(ctx context.Context, cfg Config) (*Sandbox, error) {
	if len(cfg.Argv) == 0 {
		return nil, errors.New("no command to run in the sandbox")
	}
	if cfg.Dial == nil {
		return nil, errors.New("the sandbox needs a way into the cluster's network")
	}
	cfg, err := checkConfig(cfg)
	if err != nil {
		return nil, err
	}
	loopback, locals, err := splitLocals(ctx, cfg.Resolver, cfg.Local)
	if err != nil {
		return nil, err
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("sandbox control socket: %w", err)
	}
	setBuffers(fds[0])
	setBuffers(fds[1])
	child := os.NewFile(uintptr(fds[1]), "sandbox-ctl")
	c, err := newCtl(os.NewFile(uintptr(fds[0]), "sandbox-ctl"))
	if err != nil {
		child.Close()
		return nil, err
	}
	args := cfg.InitArgs
	if len(args) == 0 {
		args = defaultInitArgs()
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = cfg.Stdin, cfg.Stdout, cfg.Stderr
	// The command's environment goes in the configuration: the pod's
	// variables (GODEBUG, GOMAXPROCS...) are not the first process's.
	cmd.Env = []string{}
	cmd.ExtraFiles = []*os.File{child}
	cmd.SysProcAttr = nsAttr(cfg.User)
	if err := cmd.Start(); err != nil {
		child.Close()
		c.conn.Close()
		return nil, fmt.Errorf("creating the sandbox's namespaces: %w", err)
	}
	child.Close()
	sb := &Sandbox{cmd: cmd, ctl: c, pending: map[uint64]chan dialed{}, done: make(chan struct{})}
	go func() {
		sb.err = cmd.Wait()
		c.conn.Close()
		close(sb.done)
	}()
	if err := sb.setUp(ctx, cfg, loopback, locals); err != nil {
		_ = cmd.Process.Kill()
		<-sb.done
		if sb.stack != nil {
			sb.stack.close()
		}
		return nil, err
	}
	return sb, nil
}

// setUp sends the configuration, takes the TUN device and the loopback
// listeners, starts the stack and lets the command start.
func (sb *Sandbox) setUp(ctx context.Context, cfg Config, loopback []Local, locals []Local) error {
	dir := cfg.Dir
	if dir == "" {
		dir, _ = os.Getwd()
	}
	ic := &initConfig{
		Argv: cfg.Argv, Env: cfg.Env, Dir: dir, Hostname: cfg.Hostname,
		ResolvConf: cfg.DNS.ResolvConf(), Mounts: cfg.Mounts,
		Address: sandboxAddr.String(), Address6: sandboxAddr6.String(), MTU: mtu,
	}
	ic.Hosts = hostsLines(locals)
	for _, l := range loopback {
		ic.Loopback = append(ic.Loopback, int(l.Port))
		ic.LoopbackAddrs = append(ic.LoopbackAddrs, loopbackAddr(l))
	}
	if err := sb.ctl.send(message{Op: opConfig, Config: ic}, -1); err != nil {
		return sb.failed(fmt.Errorf("configuring the sandbox: %w", err))
	}
	buf := make([]byte, 64<<10)
	var listeners []net.Listener
	closeAll := func() {
		for _, ln := range listeners {
			ln.Close()
		}
	}
	for {
		m, fd, err := sb.ctl.recv(buf)
		if err != nil {
			closeAll()
			return sb.failed(err)
		}
		switch {
		case m.Error != "":
			if fd >= 0 {
				syscall.Close(fd)
			}
			closeAll()
			return fmt.Errorf("setting up the sandbox: %s", m.Error)
		case m.Op == opTUN && fd >= 0:
			st, err := newNetStack(fd, cfg, locals)
			if err != nil {
				syscall.Close(fd)
				closeAll()
				return fmt.Errorf("starting the sandbox's network stack: %w", err)
			}
			sb.stack = st
		case m.Op == opListen && fd >= 0:
			ln, err := net.FileListener(os.NewFile(uintptr(fd), "sandbox-loopback"))
			syscall.Close(fd)
			if err != nil {
				closeAll()
				return fmt.Errorf("the sandbox's loopback listener: %w", err)
			}
			listeners = append(listeners, ln)
		case m.Op == opReady:
			if sb.stack == nil {
				closeAll()
				return errors.New("setting up the sandbox: no network device came back")
			}
			for i, ln := range listeners {
				go serveLoopback(ln, loopbackAddr(loopback[i]), int(loopback[i].Port), cfg.Log)
			}
			go func() { <-sb.done; closeAll() }()
			if err := sb.ctl.send(message{Op: opGo}, -1); err != nil {
				return sb.failed(err)
			}
			m, _, err := sb.ctl.recv(buf)
			if err != nil {
				return sb.failed(err)
			}
			if m.Error != "" {
				return &startError{msg: m.Error, code: m.Code}
			}
			sb.Pid = m.Pid
			go sb.readReplies()
			return nil
		default:
			if fd >= 0 {
				syscall.Close(fd)
			}
		}
	}
}

// startError is a command that could not start inside: code is the
// shell's exit code for it (127 not found, 126 not executable).
type startError struct {
	msg  string
	code int
}

func (e *startError) Error() string { return e.msg }

// ExitCode is the shell's code for a command that did not start.
func (e *startError) ExitCode() int { return e.code }

// failed says why the first process went away during the set-up.
func (sb *Sandbox) failed(err error) error {
	<-sb.done
	if sb.err != nil {
		return fmt.Errorf("setting up the sandbox: its first process ended (%w); see the messages above", sb.err)
	}
	return fmt.Errorf("setting up the sandbox: %w", err)
}

// serveLoopback makes this machine's addr:port (on its loopback) answer
// the sandbox's.
func serveLoopback(ln net.Listener, addr string, port int, logf func(string, ...any)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			t, err := net.Dial("tcp", net.JoinHostPort(addr, fmt.Sprint(port)))
			if err != nil {
				if logf != nil {
					logf("sandbox: --local %s:%d: %v", addr, port, err)
				}
				c.Close()
				return
			}
			pipe(c, t)
		}()
	}
}

// readReplies hands each connection into the sandbox to its caller.
func (sb *Sandbox) readReplies() {
	buf := make([]byte, 64<<10)
	for {
		m, fd, err := sb.ctl.recv(buf)
		if err != nil {
			sb.mu.Lock()
			for id, ch := range sb.pending {
				ch <- dialed{fd: -1, err: errors.New("the sandbox has ended")}
				delete(sb.pending, id)
			}
			sb.mu.Unlock()
			return
		}
		if m.Op != opDialed {
			if fd >= 0 {
				syscall.Close(fd)
			}
			continue
		}
		sb.mu.Lock()
		ch := sb.pending[m.ID]
		delete(sb.pending, m.ID)
		sb.mu.Unlock()
		d := dialed{fd: fd}
		if m.Error != "" {
			d.err = errors.New(m.Error)
		}
		if ch == nil {
			if fd >= 0 {
				syscall.Close(fd)
			}
			continue
		}
		ch <- d
	}
}

// DialLoopback connects to the sandbox's 127.0.0.1:port, where the
// command listens.
func (sb *Sandbox) DialLoopback(ctx context.Context, port int) (net.Conn, error) {
	ch := make(chan dialed, 1)
	sb.mu.Lock()
	sb.nextID++
	id := sb.nextID
	sb.pending[id] = ch
	sb.mu.Unlock()
	if err := sb.ctl.send(message{Op: opDial, ID: id, Port: port}, -1); err != nil {
		sb.mu.Lock()
		delete(sb.pending, id)
		sb.mu.Unlock()
		return nil, fmt.Errorf("connecting into the sandbox: %w", err)
	}
	select {
	case d := <-ch:
		if d.err != nil {
			return nil, d.err
		}
		f := os.NewFile(uintptr(d.fd), "sandbox-conn")
		defer f.Close()
		return net.FileConn(f)
	case <-ctx.Done():
		go func() {
			if d := <-ch; d.fd >= 0 {
				syscall.Close(d.fd)
			}
		}()
		return nil, ctx.Err()
	case <-sb.done:
		return nil, errors.New("the sandbox has ended")
	}
}

// ForwardLoopback accepts connections on ln until ctx ends and joins each
// to the sandbox's 127.0.0.1:port: how intercepted requests reach the
// command's listener.
func (sb *Sandbox) ForwardLoopback(ctx context.Context, ln net.Listener, port int) error {
	go func() {
		select {
		case <-ctx.Done():
		case <-sb.done:
		}
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go func() {
			t, err := sb.DialLoopback(ctx, port)
			if err != nil {
				c.Close()
				return
			}
			pipe(c, t)
		}()
	}
}

// Signal passes sig on to the command.
func (sb *Sandbox) Signal(sig syscall.Signal) error {
	return sb.ctl.send(message{Op: opSignal, Signal: int(sig)}, -1)
}

// Stop ends the command: SIGTERM, then after grace the whole sandbox.
func (sb *Sandbox) Stop(grace time.Duration) {
	_ = sb.Signal(syscall.SIGTERM)
	select {
	case <-sb.done:
	case <-time.After(grace):
		sb.Kill()
		<-sb.done
	}
}

// Kill ends the sandbox at once: its first process, and with it every
// process in it.
func (sb *Sandbox) Kill() { _ = sb.cmd.Process.Kill() }

// Done is closed once the sandbox has ended.
func (sb *Sandbox) Done() <-chan struct{} { return sb.done }

// Wait waits for the sandbox to end and returns its first process's exit:
// the command's code (128+N for a signal N).
func (sb *Sandbox) Wait() error {
	<-sb.done
	if sb.stack != nil {
		sb.stack.close()
	}
	return sb.err
}

// ExitCode is the command's exit code once the sandbox has ended, as a
// shell gives it: 128+N for a signal N, also when the sandbox itself was
// killed (Stop, Kill).
func (sb *Sandbox) ExitCode() int {
	<-sb.done
	ps := sb.cmd.ProcessState
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// InitPid is the first process's id on this machine.
func (sb *Sandbox) InitPid() int { return sb.cmd.Process.Pid }
