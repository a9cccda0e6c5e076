package sandbox

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// The test binary is also the sandbox's first process (InitCommand), the
// small clients the tests run inside (clientCommand) and a stand-in
// plugin that a test kills (pluginCommand).
const (
	clientCommand = "__sandbox-test-client"
	pluginCommand = "__sandbox-test-plugin"
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case InitCommand:
			RunInit(os.Args[2:])
		case clientCommand:
			os.Exit(client(os.Args[2:]))
		case pluginCommand:
			os.Exit(standInPlugin(os.Args[2:]))
		}
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// testBinary is a copy of the test binary that an ordinary user may run
// (go test's own is in a directory only its owner reads).
func testBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		// Outside /tmp: the sandbox has an empty /tmp of its own.
		binDir, binErr = os.MkdirTemp("/var/tmp", "sandbox-test-") //nolint:usetesting // shared by every test of the run, so not one test's TempDir
		if binErr != nil {
			return
		}
		if binErr = os.Chmod(binDir, 0o755); binErr != nil {
			return
		}
		self, err := os.Executable()
		if err != nil {
			binErr = err
			return
		}
		b, err := os.ReadFile(self)
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(binDir, "sandbox.test")
		binErr = os.WriteFile(binPath, b, 0o755)
	})
	if binErr != nil {
		t.Fatalf("copying the test binary: %v", binErr)
	}
	return binPath
}

// ordinaryUser is the user the sandbox runs as: the caller, or nobody
// (65534) when the tests run as root, so that no test passes on root's
// privileges.
func ordinaryUser() *User {
	if os.Getuid() != 0 {
		return nil
	}
	return &User{UID: 65534, GID: 65534}
}

// needSandbox skips the test, with the reason, where this machine cannot
// run the sandbox.
func needSandbox(t *testing.T) {
	t.Helper()
	if err := checkSysctls(procSysctl); err != nil {
		t.Skip(err)
	}
	cmd := exec.Command(testBinary(t), InitCommand, probeArg)
	cmd.SysProcAttr = nsAttr(ordinaryUser())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("this machine cannot create the sandbox's namespaces as an ordinary user: %v %s", err, out)
	}
}

// client is what the tests run inside the sandbox.
func client(args []string) int {
	switch args[0] {
	case "dial": // dial ADDR: send a line, print the answer
		c, err := net.DialTimeout("tcp", args[1], 20*time.Second)
		if err != nil {
			fmt.Println("error:", err)
			return 3
		}
		defer c.Close()
		fmt.Fprintf(c, "ping\n")
		_ = c.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(c)
		fmt.Print(string(b))
		return 0
	case "resolve": // resolve NAME with Go's own resolver
		addrs, err := net.DefaultResolver.LookupHost(context.Background(), args[1])
		if err != nil {
			fmt.Println("error:", err)
			return 3
		}
		fmt.Println(strings.Join(addrs, " "))
		return 0
	case "dns-udp": // dns-udp SERVER NAME: one raw query over UDP
		return rawDNS(args[1], args[2])
	case "udp": // udp ADDR: a datagram, and what comes back
		c, err := net.Dial("udp", args[1])
		if err != nil {
			fmt.Println("error:", err)
			return 3
		}
		_, _ = c.Write([]byte("hello"))
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 100))
		fmt.Println("error:", err)
		return 3
	case "serve": // serve PORT: answer each connection on the loopback
		ln, err := net.Listen("tcp", "127.0.0.1:"+args[1])
		if err != nil {
			fmt.Println("error:", err)
			return 3
		}
		fmt.Println("listening")
		for {
			c, err := ln.Accept()
			if err != nil {
				return 3
			}
			host, _ := os.Hostname()
			fmt.Fprintf(c, "hello from %s\n", host)
			c.Close()
		}
	case "bench": // bench HOST ...: see benchClient
		return benchClient(args[1], args[2:])
	case "sleep":
		fmt.Println("sleeping")
		time.Sleep(time.Hour)
	}
	return 2
}

func rawDNS(server, name string) int {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	q, _ := b.Finish()
	c, err := net.Dial("udp", server)
	if err != nil {
		fmt.Println("error:", err)
		return 3
	}
	_, _ = c.Write(q)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		fmt.Println("error:", err)
		return 3
	}
	var p dnsmessage.Parser
	if _, err := p.Start(buf[:n]); err != nil {
		fmt.Println("error:", err)
		return 3
	}
	_ = p.SkipAllQuestions()
	for {
		h, err := p.AnswerHeader()
		if err != nil {
			break
		}
		if h.Type == dnsmessage.TypeA {
			a, _ := p.AResource()
			fmt.Println(net.IP(a.A[:]))
		} else {
			_ = p.SkipAnswer()
		}
	}
	return 0
}

// fakePod stands in for the copy pod: what the sandbox dials is recorded
// and answered by in-process servers (the cluster's DNS among them).
type fakePod struct {
	mu     sync.Mutex
	dialed []string
}

func (p *fakePod) dial(_ context.Context, addr string) (net.Conn, error) {
	p.mu.Lock()
	p.dialed = append(p.dialed, addr)
	p.mu.Unlock()
	host, _, _ := net.SplitHostPort(addr)
	switch host {
	case fakeDNS:
		a, b := net.Pipe()
		go serveNames(b, map[string][4]byte{"backend." + fakeNS + ".svc.cluster.local.": {10, 96, 0, 5}})
		return a, nil
	case fakeBackend:
		a, b := net.Pipe()
		a = halfCloser{a}
		go func() {
			defer b.Close()
			line, _ := bufio.NewReader(b).ReadString('\n')
			fmt.Fprintf(b, "backend got %q from the pod, dialed as %s\n", strings.TrimSpace(line), addr)
		}()
		return a, nil
	}
	return nil, &tunnel.DialError{Addr: addr, Reason: tunnel.DialRefused, Message: "connection refused"}
}

// halfCloser passes an end of stream on as the tunnel's streams do (a
// net.Pipe alone cannot, and would end both directions).
type halfCloser struct{ net.Conn }

func (halfCloser) CloseWrite() error { return nil }

func (p *fakePod) dials() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.dialed...)
}

// standInPlugin starts a sandbox that sleeps and prints the process ids
// (its first process's, the command's), then waits to be killed.
func standInPlugin(args []string) int {
	p := &fakePod{}
	sb, err := Start(context.Background(), Config{
		Argv: []string{args[0], clientCommand, "sleep"}, Env: []string{"PATH=/usr/bin:/bin"},
		Stdout: os.Stdout, Stderr: os.Stderr, Hostname: "stand-in", Dial: p.dial,
		DNS: testDNS(), InitArgs: []string{args[0], InitCommand}, User: ordinaryUser(),
	})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Printf("pids %d %d\n", sb.InitPid(), sb.Pid)
	_ = sb.Wait()
	return 0
}
