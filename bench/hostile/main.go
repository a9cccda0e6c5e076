// Command hostile runs the attacks of a hostile caller against the real
// sidecar binary on loopback, one sidecar per attack, and reports for each
// the sidecar's peak RSS (VmHWM), the CPU it spent, whether it was still
// running, and whether an ordinary caller was served while the attack held.
// bench/hostile.sh runs it for one or more binaries and writes
// bench/hostile-results.md.
//
//	hostile -proxy bin/intercept-proxy -label after [-attacks h2c,heads,...]
//	hostile -app 127.0.0.1:0   (the app the sidecars forward to; internal)
//
// Every loop is bounded in count and time; nothing leaves loopback.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

func main() {
	proxy := flag.String("proxy", "", "the sidecar binary")
	label := flag.String("label", "", "what the binary is (a column of the report)")
	attacks := flag.String("attacks", "h2c,h2fill,h2unread,heads,idle,fds,settings", "attacks to run, comma-separated")
	hold := flag.Duration("hold", 8*time.Second, "how long each attack holds before the ordinary caller's check")
	app := flag.String("app", "", "serve the app on this address and print it (internal)")
	flag.Parse()
	raiseFiles()
	if *app != "" {
		serveApp(*app)
		return
	}
	if *proxy == "" {
		fmt.Fprintln(os.Stderr, "hostile: -proxy BINARY is required")
		os.Exit(2)
	}
	appAddr, stopApp, err := startApp()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostile: starting the app:", err)
		os.Exit(1)
	}
	defer stopApp()
	for _, name := range strings.Split(*attacks, ",") {
		a, ok := all[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "hostile: no attack %q\n", name)
			os.Exit(2)
		}
		r := run(*proxy, appAddr, a, *hold)
		fmt.Printf("| %s | %s | %s | %.1f | %.1f | %s | %s | %s |\n", *label, name, a.what, r.peakMiB, r.cpu, yes(r.alive, "running", "EXITED"), yes(r.served, "served", "NOT served"), r.note)
	}
}

func yes(b bool, y, n string) string {
	if b {
		return y
	}
	return n
}

// attack is one way of hurting the sidecar: the sidecar's extra
// arguments and file limit, and the attack itself, which returns a
// function that ends it (closing its connections) and a note for the
// report.
type attack struct {
	what   string
	nofile int
	h2c    bool
	start  func(ports []string) (stop func(), note string)
}

var all = map[string]attack{
	"h2c":      {what: "220 h2c connections x 100 streams whose bodies never end, HTTP/1.1 app", start: h2cFanOut},
	"h2fill":   {what: "400 h2c connections x 100 streams whose bodies never end, each connection sending up to 1 MiB of body (what windows allow), HTTP/1.1 app", start: h2cFill},
	"h2unread": {what: "400 h2c connections x 100 streams asking for 4 MiB answers, reading the connection and never giving a window, h2c app", h2c: true, start: h2cUnread},
	"heads": {what: "1,024 unfinished 60 KB heads on each of two ports", start: func(ports []string) (func(), string) {
		a := holdMany(ports[0], 1024, unfinishedHead)
		b := holdMany(ports[1], 1024, unfinishedHead)
		return func() { a(); b() }, ""
	}},
	"idle": {what: "1,024 idle kept-alive and 1,024 slow-body connections", start: func(ports []string) (func(), string) {
		a := holdMany(ports[0], 1024, idleKeptAlive)
		b := holdMany(ports[0], 1024, slowBody)
		return func() { a(); b() }, ""
	}},
	"fds": {what: "file descriptors exhausted (limit 256): 600 unfinished heads", nofile: 256, start: func(ports []string) (func(), string) {
		return holdMany(ports[0], 600, unfinishedHead), ""
	}},
	"settings": {what: "930 SETTINGS frames of 2,700 INITIAL_WINDOW_SIZE entries, 100 open streams", h2c: true, start: settingsFlood},
}

type result struct {
	peakMiB, cpu  float64
	alive, served bool
	note          string
}

// run starts a sidecar with two ports, runs a against it for hold, checks
// an ordinary caller, and stops everything it started.
func run(bin, app string, a attack, hold time.Duration) result {
	ports := []string{freePort(), freePort()}
	args := []string{"--listen=" + ports[0], "--upstream=" + app, "--drain-delay=0s",
		"--also=listen=" + ports[1] + ",upstream=" + app}
	if a.h2c {
		args = append(args, "--h2c")
	}
	nofile := a.nofile
	if nofile == 0 {
		nofile = 20000
	}
	cmd := exec.Command("prlimit", append([]string{"--nofile=" + strconv.Itoa(nofile) + ":" + strconv.Itoa(nofile), "--", bin}, args...)...)
	cmd.Env = append(os.Environ(), "MEMORY_LIMIT=268435456", "GOMAXPROCS=2")
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		return result{note: "could not start: " + err.Error()}
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() {
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	}()
	pid := cmd.Process.Pid
	if !servedBy(ports[0], 10*time.Second) {
		return result{note: "never served: " + lastLine(logs.String())}
	}
	stop, note := a.start(ports)
	deadline := time.Now().Add(hold)
	peak := 0.0
	for time.Now().Before(deadline) {
		if p := hwm(pid); p > peak {
			peak = p
		}
		select {
		case <-exited:
			deadline = time.Now()
		case <-time.After(100 * time.Millisecond):
		}
	}
	r := result{note: note}
	select {
	case <-exited:
	default:
		r.alive = true
		r.served = servedBy(ports[0], 5*time.Second)
		if p := hwm(pid); p > peak {
			peak = p
		}
		r.cpu = cpuSeconds(pid)
	}
	r.peakMiB = peak
	stop()
	if !r.alive {
		r.note = strings.TrimSpace(r.note + " exit: " + lastLine(logs.String()))
	}
	return r
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	l := lines[len(lines)-1]
	if i := strings.Index(l, "err="); i >= 0 {
		l = l[i:]
	}
	return strings.ReplaceAll(l, "|", "/")
}

// hwm is the process's peak resident set so far, in MiB (0 once gone).
func hwm(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// cpuSeconds is the CPU time the process has used (user and system).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100 // clock ticks
}

// servedBy reports whether an ordinary GET through addr is answered by the
// app within d, trying again on a new connection each time.
func servedBy(addr string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get("http://" + addr + "/ordinary")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && string(body) == "app" {
				return true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// holdMany opens n connections to addr, each started by begin, and keeps
// them open until the returned function is called.
func holdMany(addr string, n int, begin func(net.Conn)) func() {
	var conns []net.Conn
	for range n {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			continue
		}
		c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		begin(c)
		conns = append(conns, c)
	}
	return func() {
		for _, c := range conns {
			c.Close()
		}
	}
}

var bigHead = "GET / HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-Filler: "+strings.Repeat("f", 90)+"\r\n", 600)

func unfinishedHead(c net.Conn) { io.WriteString(c, bigHead) }

func idleKeptAlive(c net.Conn) {
	io.WriteString(c, "GET /idle HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	c.Read(make([]byte, 4096))
}

func slowBody(c net.Conn) {
	io.WriteString(c, "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\nthe first bytes of a body that never comes")
}

// h2 is an attacker's h2c connection: frames written to w, flushed to c.
type h2 struct {
	fr *http2.Framer
	w  *bufio.Writer
	c  net.Conn
}

// h2Conn opens an h2c connection and reads (and drops) what comes back.
func h2Conn(addr string) (h2, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return h2{}, err
	}
	io.WriteString(c, http2.ClientPreface)
	w := bufio.NewWriterSize(c, 64<<10)
	fr := http2.NewFramer(w, c)
	fr.WriteSettings()
	w.Flush()
	go io.Copy(io.Discard, c)
	return h2{fr, w, c}, nil
}

func postBlock(path string) []byte {
	var b bytes.Buffer
	e := hpack.NewEncoder(&b)
	for _, f := range [][2]string{{":method", "POST"}, {":path", path}, {":scheme", "http"}, {":authority", "x"}, {"content-length", "100000000"}} {
		e.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return b.Bytes()
}

// openStreams opens n streams on fr whose bodies start and never end.
func openStreams(fr *http2.Framer, n int) {
	for i := range n {
		id := uint32(2*i + 1)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: postBlock("/never"), EndHeaders: true})
		fr.WriteData(id, false, []byte("start"))
	}
}

func h2cFanOut(ports []string) (func(), string) {
	var conns []net.Conn
	for range 220 {
		h, err := h2Conn(ports[0])
		if err != nil {
			continue
		}
		h.c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		openStreams(h.fr, 100)
		h.w.Flush()
		conns = append(conns, h.c)
	}
	return func() {
		for _, c := range conns {
			c.Close()
		}
	}, fmt.Sprintf("%d connections opened", len(conns))
}

// h2cFill opens connections of 100 streams whose bodies never end, and on
// each sends as much body as the sidecar's windows take, up to 1 MiB a
// connection: with an HTTP/1.1 app most streams wait for a connection to
// it, and what they sent waits in the sidecar.
func h2cFill(ports []string) (func(), string) {
	var conns []net.Conn
	piece := make([]byte, 10000)
	sent := 0
	deadline := time.Now().Add(90 * time.Second)
	for range 400 {
		if time.Now().After(deadline) {
			break
		}
		h, err := h2Conn(ports[0])
		if err != nil {
			continue
		}
		conns = append(conns, h.c)
		h.c.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
		openStreams(h.fr, 100)
		for i := range 100 {
			if h.fr.WriteData(uint32(2*i+1), false, piece) != nil {
				break
			}
			sent += len(piece)
		}
		h.w.Flush()
	}
	return func() {
		for _, c := range conns {
			c.Close()
		}
	}, fmt.Sprintf("%d connections, %d MiB of body written (kernel buffers included)", len(conns), sent>>20)
}

// h2cUnread opens connections of 100 streams each asking for a large
// answer, reads what comes and never gives a window for it: the app sends
// what the sidecar's windows towards it allow, and that waits in the
// sidecar.
func h2cUnread(ports []string) (func(), string) {
	var conns []net.Conn
	deadline := time.Now().Add(90 * time.Second)
	for range 400 {
		if time.Now().After(deadline) {
			break
		}
		h, err := h2Conn(ports[0])
		if err != nil {
			continue
		}
		conns = append(conns, h.c)
		h.c.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
		for i := range 100 {
			h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: getBlock("/big"), EndHeaders: true, EndStream: true})
		}
		h.w.Flush()
	}
	return func() {
		for _, c := range conns {
			c.Close()
		}
	}, fmt.Sprintf("%d connections opened", len(conns))
}

func getBlock(path string) []byte {
	var b bytes.Buffer
	e := hpack.NewEncoder(&b)
	for _, f := range [][2]string{{":method", "GET"}, {":path", path}, {":scheme", "http"}, {":authority", "x"}} {
		e.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return b.Bytes()
}

func settingsFlood(ports []string) (func(), string) {
	h, err := h2Conn(ports[0])
	if err != nil {
		return func() {}, "no connection"
	}
	openStreams(h.fr, 100)
	entries := make([]http2.Setting, 2700)
	for i := range entries {
		entries[i] = http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(65535 + i%2)}
	}
	sent := 0
	h.c.SetWriteDeadline(time.Now().Add(15 * time.Second))
	for range 930 {
		if h.fr.WriteSettings(entries...) != nil || h.w.Flush() != nil {
			break
		}
		sent++
	}
	return func() { h.c.Close() }, fmt.Sprintf("%d of 930 frames written in 15 s", sent)
}

// startApp runs this program as the app, in a process of its own (its
// file descriptors are not the attacker's).
func startApp() (string, func(), error) {
	self, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(self, "-app", "127.0.0.1:0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { cmd.Process.Signal(syscall.SIGKILL); cmd.Wait() }
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		stop()
		return "", nil, err
	}
	return strings.TrimSpace(line), stop, nil
}

// serveApp is an app that reads each request's whole body, then answers
// "app", or 4 MiB to /big (one buffer for every answer).
func serveApp(addr string) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(l.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	big := bytes.Repeat([]byte("b"), 4<<20)
	srv := &http.Server{Protocols: &p, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/big" {
			w.Write(big)
			return
		}
		io.WriteString(w, "app")
	})}
	go func() { <-ctx.Done(); srv.Close() }()
	srv.Serve(l)
}

// raiseFiles allows this process as many open files as it may have.
func raiseFiles() {
	var r syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r) == nil {
		r.Cur = r.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
	}
}
