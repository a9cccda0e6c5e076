// Package procid proves that a process is the one a record was written
// for, so that a command which signals a recorded pid never signals a
// stranger that has been given the same pid since.
//
// A process that may be signaled later calls Serve: it draws a random
// token and answers challenges on a unix socket in the user's private
// state directory. Its Identity (pid, the start time the operating system
// gives it, its executable and the token) goes into the record. Check
// compares what the operating system says of the pid now with the record,
// then asks the socket to prove it holds the token (and, where the kernel
// says who listens on a socket, that the listener is that pid). Only a
// process found Ours is signaled by Terminate, which checks the start time
// once more through a handle to the process where the system has one
// (pidfd on Linux, a process handle on Windows).
package procid

import (
	"bufio"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Identity is what a record keeps of the process that holds an intercept.
type Identity struct {
	PID int `json:"pid"`
	// Start is when the process started, as the operating system counts
	// it (clock ticks since boot on Linux, microseconds since the epoch on
	// macOS, 100 ns since 1601 on Windows); only ever compared.
	Start string `json:"start"`
	// Exe is the process's executable.
	Exe string `json:"exe"`
	// Token is a random secret the process holds and proves on its socket.
	Token string `json:"token"`
}

// Info is what the operating system says of a pid now.
type Info struct {
	PID   int
	Start string
	// Exe is the executable's path, when the system tells it (another
	// user's process may not); Name the short name it runs as.
	Exe, Name string
}

// ErrNoProcess says no process has the pid.
var ErrNoProcess = errors.New("no such process")

// errOtherUser says the pid belongs to a process of another user, which
// this user may not inspect (and which is therefore not this user's).
var errOtherUser = errors.New("a process of another user")

// Of is what the operating system says of pid now; ErrNoProcess when no
// process has it.
func Of(pid int) (Info, error) {
	if pid <= 0 {
		return Info{}, ErrNoProcess
	}
	return inspect(pid)
}

// What names the process for a person: its executable or name.
func (i Info) What() string {
	switch {
	case i.Exe != "":
		return printable(i.Exe)
	case i.Name != "":
		return printable(i.Name)
	}
	return "a process this user cannot inspect"
}

// Verdict is what Check concluded.
type Verdict int

const (
	// Ours: the pid is the recorded process, proven.
	Ours Verdict = iota
	// Gone: the recorded process has ended (no process has its pid).
	Gone
	// Other: a process runs with the pid but is not the recorded one (it
	// started at another time, or runs another executable); the recorded
	// process has ended.
	Other
	// Unproven: a process runs with the pid and the recorded start time,
	// but it did not prove it holds the token (or the record has none).
	Unproven
)

// Finding is what Check found at a recorded pid.
type Finding struct {
	Verdict Verdict
	// Found is what the system says runs at the pid (zero when Gone).
	Found Info
	// Why says, when the verdict is not Ours, why not.
	Why string
}

// String says what was found, for a person.
func (f Finding) String() string {
	switch f.Verdict {
	case Ours:
		return fmt.Sprintf("pid %d is the intercept's process (%s)", f.Found.PID, f.Found.What())
	case Gone:
		return "no process has that pid any more"
	}
	return fmt.Sprintf("pid %d is %s, not proven to be the intercept's process: %s", f.Found.PID, f.Found.What(), f.Why)
}

// challengeTimeout bounds a whole challenge on the socket.
const challengeTimeout = 2 * time.Second

// Check tells whether the process recorded as id, whose socket is in dir,
// runs and is the one the record was written for.
func Check(dir string, id Identity) Finding {
	info, err := Of(id.PID)
	if errors.Is(err, ErrNoProcess) {
		return Finding{Verdict: Gone}
	}
	info.PID = id.PID
	if errors.Is(err, errOtherUser) {
		return Finding{Verdict: Other, Found: info, Why: "it belongs to another user"}
	}
	if err != nil {
		return Finding{Verdict: Unproven, Found: info, Why: fmt.Sprintf("its start time cannot be read (%v)", err)}
	}
	if id.Start == "" || id.Token == "" {
		return Finding{Verdict: Unproven, Found: info, Why: "the record holds no proof of identity (written by an older kubectl-intercept)"}
	}
	if info.Start != id.Start {
		return Finding{Verdict: Other, Found: info, Why: "it started at another time than the intercept's process, which has ended"}
	}
	if !sameExe(info, id.Exe) {
		return Finding{Verdict: Other, Found: info, Why: fmt.Sprintf("it runs another executable than the recorded %s", printable(id.Exe))}
	}
	if err := challenge(dir, id); err != nil {
		return Finding{Verdict: Unproven, Found: info, Why: err.Error()}
	}
	return Finding{Verdict: Ours, Found: info}
}

// sameExe compares what the system says runs with the recorded executable,
// where the system says it: a path where it gives one, else the short name.
func sameExe(info Info, exe string) bool {
	switch {
	case exe == "":
		return false
	case info.Exe != "":
		return info.Exe == exe
	case info.Name != "":
		base := filepath.Base(exe)
		return strings.HasPrefix(base, info.Name) || strings.HasPrefix(info.Name, base)
	}
	return true
}

// Terminate asks the process recorded as id to end (SIGTERM; on Windows,
// where a console-less process has no such signal, it is ended), after
// Check found it Ours. The start time is checked again immediately before.
func Terminate(id Identity) error {
	return signalIfStarted(id.PID, id.Start)
}

// WaitGone waits up to timeout for the process recorded as id to end; true
// when it did.
func WaitGone(id Identity, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		info, err := Of(id.PID)
		if errors.Is(err, ErrNoProcess) || (err == nil && info.Start != id.Start) {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// SocketPath is where the process recorded as id answers, in dir.
func SocketPath(dir string, id Identity) string {
	sum := sha256.Sum256([]byte("kubectl-intercept socket\x00" + id.Token))
	return filepath.Join(dir, hex.EncodeToString(sum[:6])+".sock")
}

// Server answers challenges for this process until Close.
type Server struct {
	ln  net.Listener
	key []byte
	id  Identity
}

// Serve makes this process provable: it draws a token and answers on a
// socket in dir, which must be private to the user.
func Serve(dir string) (*Server, error) {
	start, err := Of(os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("reading this process's start time: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if start.Exe != "" {
		exe = start.Exe // as the system names it, symlinks resolved
	}
	var tok [32]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, err
	}
	id := Identity{PID: os.Getpid(), Start: start.Start, Exe: exe, Token: hex.EncodeToString(tok[:])}
	path := SocketPath(dir, id)
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	_ = os.Chmod(path, 0o600)
	s := &Server{ln: ln, key: tok[:], id: id}
	go s.serve()
	return s, nil
}

// Identity is what a record keeps of this process.
func (s *Server) Identity() Identity { return s.id }

// Close stops answering and removes the socket.
func (s *Server) Close() error { return s.ln.Close() }

func (s *Server) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(50 * time.Millisecond) // a temporary failure (fds): try again
			continue
		}
		go s.answer(c)
	}
}

const greeting = "kubectl-intercept identity v1 "

// maxLine bounds what either side reads of the other.
const maxLine = 256

func (s *Server) answer(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(challengeTimeout))
	line, err := readLine(c)
	if err != nil || !strings.HasPrefix(line, greeting) {
		return
	}
	nonce, err := hex.DecodeString(strings.TrimPrefix(line, greeting))
	if err != nil || len(nonce) != 32 {
		return
	}
	fmt.Fprintf(c, "%d %s\n", s.id.PID, hex.EncodeToString(proof(s.key, nonce, s.id.PID)))
}

// proof binds the answer to the challenge and to the pid that answers.
func proof(key, nonce []byte, pid int) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("kubectl-intercept process identity\x00"))
	m.Write(nonce)
	m.Write([]byte("\x00" + strconv.Itoa(pid)))
	return m.Sum(nil)
}

// challenge asks the socket of id to prove it holds the token and is pid.
func challenge(dir string, id Identity) error {
	key, err := hex.DecodeString(id.Token)
	if err != nil || len(key) != 32 {
		return errors.New("the record's token is malformed")
	}
	d := net.Dialer{Timeout: challengeTimeout}
	c, err := d.Dial("unix", SocketPath(dir, id))
	if err != nil {
		return fmt.Errorf("it does not answer on the intercept's identity socket (%w)", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(challengeTimeout))
	if uc, ok := c.(*net.UnixConn); ok {
		if pid, known := peerPID(uc); known && pid != id.PID {
			return fmt.Errorf("the identity socket is held by pid %d", pid)
		}
	}
	var nonce [32]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(c, "%s%s\n", greeting, hex.EncodeToString(nonce[:])); err != nil {
		return fmt.Errorf("its identity socket failed: %w", err)
	}
	line, err := readLine(c)
	if err != nil {
		return fmt.Errorf("its identity socket did not answer: %w", err)
	}
	pidText, mac, _ := strings.Cut(line, " ")
	got, err := hex.DecodeString(mac)
	if err != nil || pidText != strconv.Itoa(id.PID) || !hmac.Equal(got, proof(key, nonce[:], id.PID)) {
		return errors.New("its identity socket answered without the record's token")
	}
	return nil
}

// readLine reads one line of at most maxLine bytes.
func readLine(r io.Reader) (string, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, maxLine), maxLine)
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(line, "\n"), nil
}

// printable quotes s when it holds a character a terminal would act on.
func printable(s string) string {
	for _, c := range s {
		if !strconv.IsPrint(c) {
			return strconv.Quote(s)
		}
	}
	return s
}

// Sweep removes the sockets in dir that nobody answers on any more (their
// processes ended without removing them).
func Sweep(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if len(name) != 17 || !strings.HasSuffix(name, ".sock") || e.Type()&os.ModeSocket == 0 {
			continue
		}
		if _, err := hex.DecodeString(strings.TrimSuffix(name, ".sock")); err != nil {
			continue
		}
		path := filepath.Join(dir, name)
		c, err := net.DialTimeout("unix", path, challengeTimeout)
		if err == nil {
			c.Close()
			continue
		}
		if refused(err) {
			_ = os.Remove(path)
		}
	}
}
