// Package demo is the demo application that kubectl-intercept's end-to-end
// tests deploy and intercept, plus the client helpers those tests use.
//
// One HTTP listener serves HTTP/1.1, h2c (HTTP/2 with prior knowledge) and
// gRPC; see Server for the endpoints. ServeLineEcho serves a raw TCP
// line-echo protocol on a second listener. Every answer identifies the pod
// that produced it, so a test can tell whether a request reached the original
// workload or the intercepting one.
package demo

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// PodHeader is the HTTP response header naming the pod that answered.
const PodHeader = "X-Demo-Pod"

// Config configures a Server.
type Config struct {
	// Pod is the name reported in every answer.
	Pod string
	// Message is an arbitrary string reported by the JSON echo endpoint.
	Message string
	// Log receives one line per request or TCP connection; nil disables logging.
	Log io.Writer
}

// EchoResponse is the JSON body of the echo endpoint ("/" and any unmatched
// path).
type EchoResponse struct {
	Pod     string `json:"pod"`
	Message string `json:"message"`
	Method  string `json:"method"`
	Path    string `json:"path"`
	Query   string `json:"query,omitempty"`
	Host    string `json:"host"`
	Proto   string `json:"proto"`
	Remote  string `json:"remote"`
	// Headers holds the request headers as received, keyed by canonical name;
	// repeated headers are joined with ", ".
	Headers map[string]string `json:"headers"`
	// BodyBytes is the size of the request body, which is read and discarded.
	BodyBytes int64 `json:"bodyBytes"`
}

// UploadResponse is the JSON body of the /upload endpoint.
type UploadResponse struct {
	Pod    string `json:"pod"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// Server is the demo application's HTTP handler. Endpoints:
//
//	/              JSON EchoResponse (also any unmatched path)
//	/healthz       200 "ok"
//	/ws            WebSocket: sends the pod name, then echoes every message
//	/sse           Server-Sent Events: "data: <pod>" every ?interval= (1s)
//	               for ?count= events (60; 0 means until the client leaves)
//	/bytes?n=N     N bytes of the Pattern, streamed
//	               (&cut=M: the app dies after M bytes, closing the
//	               connection mid-response; &chunked=1: no Content-Length)
//	/upload        POST/PUT: JSON UploadResponse with size and sha256 of the body
//	/status/CODE   answers with status CODE (200-599)
//	/call?to=URL&forward=NAME,...
//	               GETs URL passing on only the named request headers, and
//	               answers with URL's status and a JSON CallResponse
//	gRPC           HTTP/2 requests with content-type application/grpc* go to
//	               the demo.Echo service (see EchoServer)
//
// Every non-gRPC response carries the PodHeader header.
type Server struct {
	cfg      Config
	mux      *http.ServeMux
	grpc     *grpc.Server
	log      *log.Logger
	draining chan struct{}
	once     sync.Once
}

// NewServer returns a Server for cfg.
func NewServer(cfg Config) *Server {
	s := &Server{
		cfg:      cfg,
		mux:      http.NewServeMux(),
		grpc:     grpc.NewServer(),
		draining: make(chan struct{}),
	}
	if cfg.Log != nil {
		s.log = log.New(cfg.Log, "", log.LstdFlags|log.Lmicroseconds|log.LUTC)
	}
	RegisterEchoServer(s.grpc, echoService{s})
	s.mux.HandleFunc("/", s.handleEcho)
	s.mux.HandleFunc("/healthz", s.handleHealthz)
	s.mux.HandleFunc("/ws", s.handleWebSocket)
	s.mux.HandleFunc("/sse", s.handleSSE)
	s.mux.HandleFunc("/bytes", s.handleBytes)
	s.mux.HandleFunc("/upload", s.handleUpload)
	s.mux.HandleFunc("/status/{code}", s.handleStatus)
	s.mux.HandleFunc("/call", s.handleCall)
	return s
}

// HTTPServer returns an http.Server for addr that serves s over HTTP/1.1 and
// unencrypted HTTP/2 (prior knowledge) on the same port. Its Shutdown calls
// s.Drain, so long-lived streams end instead of holding up the shutdown.
func (s *Server) HTTPServer(addr string) *http.Server {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Addr:              addr,
		Handler:           s,
		Protocols:         &protocols,
		ReadHeaderTimeout: 30 * time.Second,
	}
	srv.RegisterOnShutdown(s.Drain)
	return srv
}

// Drain ends the long-lived streams (WebSocket, SSE, gRPC Chat, TCP echo
// connections) so that a graceful shutdown can finish. It is idempotent.
func (s *Server) Drain() {
	s.once.Do(func() { close(s.draining) })
}

func (s *Server) logf(format string, args ...any) {
	if s.log != nil {
		s.log.Printf(format, args...)
	}
}

// ServeHTTP dispatches gRPC requests to the gRPC server and everything else
// to the HTTP endpoints, logging one line per request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	isGRPC := r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc")
	if isGRPC {
		s.grpc.ServeHTTP(rec, r)
	} else {
		w.Header().Set(PodHeader, s.cfg.Pod)
		s.mux.ServeHTTP(rec, r)
	}
	if s.log == nil {
		return
	}
	code := strconv.Itoa(rec.statusCode())
	if isGRPC {
		h := w.Header()
		gs := h.Get("Grpc-Status")
		if gs == "" {
			gs = h.Get(http.TrailerPrefix + "Grpc-Status")
		}
		code += " grpc-status=" + gs
	}
	s.logf("pod=%s remote=%s proto=%s method=%s host=%s uri=%q status=%s bytes=%d duration=%s",
		s.cfg.Pod, r.RemoteAddr, r.Proto, r.Method, r.Host, r.RequestURI, code, rec.bytes,
		time.Since(start).Round(time.Microsecond))
}

// recorder captures the status and size of a response. It keeps the Flusher
// and Hijacker abilities of the wrapped writer (gRPC needs a Flusher, the
// WebSocket endpoint a Hijacker).
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 || r.status < 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Flush() {
	_ = http.NewResponseController(r.ResponseWriter).Flush()
}

func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(r.ResponseWriter).Hijack()
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) statusCode() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (s *Server) handleEcho(w http.ResponseWriter, r *http.Request) {
	n, _ := io.Copy(io.Discard, r.Body)
	headers := make(map[string]string, len(r.Header))
	for k, v := range r.Header {
		headers[k] = strings.Join(v, ", ")
	}
	writeJSON(w, http.StatusOK, EchoResponse{
		Pod:       s.cfg.Pod,
		Message:   s.cfg.Message,
		Method:    r.Method,
		Path:      r.URL.Path,
		Query:     r.URL.RawQuery,
		Host:      r.Host,
		Proto:     r.Proto,
		Remote:    r.RemoteAddr,
		Headers:   headers,
		BodyBytes: n,
	})
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok")
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	code, err := strconv.Atoi(r.PathValue("code"))
	if err != nil || code < 200 || code > 599 {
		http.Error(w, "status code must be a number in 200-599", http.StatusBadRequest)
		return
	}
	if code == http.StatusNoContent || code == http.StatusNotModified {
		w.WriteHeader(code)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintf(w, "%d %s\n", code, http.StatusText(code))
}

func (s *Server) handleWebSocket(w http.ResponseWriter, r *http.Request) {
	// Origin checks are pointless for a test server reached through proxies.
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return // Accept has already answered the request.
	}
	defer c.CloseNow()
	c.SetReadLimit(16 << 20)

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-s.draining:
			_ = c.Close(websocket.StatusGoingAway, "server shutting down")
		case <-ctx.Done():
		}
	}()

	if err := c.Write(ctx, websocket.MessageText, []byte(s.cfg.Pod)); err != nil {
		return
	}
	for {
		typ, data, err := c.Read(ctx)
		if err != nil {
			if st := websocket.CloseStatus(err); st == websocket.StatusNormalClosure || st == websocket.StatusGoingAway {
				_ = c.Close(websocket.StatusNormalClosure, "")
			}
			return
		}
		if err := c.Write(ctx, typ, data); err != nil {
			return
		}
	}
}

// parseInterval accepts a Go duration ("250ms") or a number of seconds ("0.5").
func parseInterval(v string) (time.Duration, error) {
	if d, err := time.ParseDuration(v); err == nil {
		return d, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, err
	}
	return time.Duration(f * float64(time.Second)), nil
}

func (s *Server) handleSSE(w http.ResponseWriter, r *http.Request) {
	interval, count := time.Second, 60
	if v := r.URL.Query().Get("interval"); v != "" {
		d, err := parseInterval(v)
		if err != nil || d < time.Millisecond {
			http.Error(w, "interval must be a duration of at least 1ms", http.StatusBadRequest)
			return
		}
		interval = d
	}
	if v := r.URL.Query().Get("count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			http.Error(w, "count must be a non-negative integer", http.StatusBadRequest)
			return
		}
		count = n
	}

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for i := 1; count == 0 || i <= count; i++ {
		if i > 1 {
			select {
			case <-ticker.C:
			case <-r.Context().Done():
				return
			case <-s.draining:
				return
			}
		}
		if _, err := fmt.Fprintf(w, "id: %d\ndata: %s\n\n", i, s.cfg.Pod); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// patternModulus is prime so that the pattern does not line up with
// power-of-two buffer sizes; reordered or dropped chunks change the digest.
const patternModulus = 251

// PatternByte returns the byte at offset off of the /bytes pattern.
func PatternByte(off int64) byte { return byte(off % patternModulus) }

// Pattern returns a reader of the first n bytes of the deterministic pattern
// the /bytes endpoint streams.
func Pattern(n int64) io.Reader { return &patternReader{remaining: n} }

type patternReader struct {
	off, remaining int64
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.remaining <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.remaining {
		b = b[:p.remaining]
	}
	for i := range b {
		b[i] = PatternByte(p.off + int64(i))
	}
	p.off += int64(len(b))
	p.remaining -= int64(len(b))
	return len(b), nil
}

func (s *Server) handleBytes(w http.ResponseWriter, r *http.Request) {
	n := int64(1024)
	if v := r.URL.Query().Get("n"); v != "" {
		var err error
		if n, err = strconv.ParseInt(v, 10, 64); err != nil || n < 0 {
			http.Error(w, "n must be a non-negative integer", http.StatusBadRequest)
			return
		}
	}
	cut := int64(-1)
	if v := r.URL.Query().Get("cut"); v != "" {
		var err error
		if cut, err = strconv.ParseInt(v, 10, 64); err != nil || cut < 0 || cut > n {
			http.Error(w, "cut must be an integer from 0 to n", http.StatusBadRequest)
			return
		}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if r.URL.Query().Get("chunked") == "" {
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	buf := make([]byte, 32<<10)
	if cut < 0 {
		_, _ = io.CopyBuffer(w, struct{ io.Reader }{Pattern(n)}, buf)
		return
	}
	// An app that crashes mid-response: what was written reaches the
	// wire, then the connection (or HTTP/2 stream) is cut.
	_, _ = io.CopyBuffer(w, struct{ io.Reader }{Pattern(cut)}, buf)
	http.NewResponseController(w).Flush()
	panic(http.ErrAbortHandler)
}

func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		w.Header().Set("Allow", "POST, PUT")
		http.Error(w, "use POST or PUT", http.StatusMethodNotAllowed)
		return
	}
	h := sha256.New()
	n, err := io.CopyBuffer(h, r.Body, make([]byte, 32<<10))
	if err != nil {
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	writeJSON(w, http.StatusOK, UploadResponse{Pod: s.cfg.Pod, Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil))})
}

// echoService implements EchoServer for the demo.
type echoService struct{ s *Server }

// header returns the response header metadata for a call: the pod name, and
// the values of InterceptMetadataKey under SeenInterceptMetadataKey.
func (e echoService) header(ctx context.Context) metadata.MD {
	md := metadata.Pairs(PodMetadataKey, e.s.cfg.Pod)
	if in, ok := metadata.FromIncomingContext(ctx); ok {
		if v := in.Get(InterceptMetadataKey); len(v) > 0 {
			md.Append(SeenInterceptMetadataKey, v...)
		}
	}
	return md
}

func (e echoService) Echo(ctx context.Context, in *Message) (*Message, error) {
	if err := grpc.SetHeader(ctx, e.header(ctx)); err != nil {
		return nil, err
	}
	return &Message{Message: in.Message, Pod: e.s.cfg.Pod}, nil
}

func (e echoService) Chat(stream grpc.BidiStreamingServer[Message, Message]) error {
	ctx := stream.Context()
	if err := stream.SendHeader(e.header(ctx)); err != nil {
		return err
	}
	type result struct {
		msg *Message
		err error
	}
	received := make(chan result)
	go func() {
		for {
			m, err := stream.Recv()
			select {
			case received <- result{m, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	for {
		select {
		case <-e.s.draining:
			return status.Error(codes.Unavailable, "server shutting down")
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case r := <-received:
			if errors.Is(r.err, io.EOF) {
				return nil
			}
			if r.err != nil {
				return r.err
			}
			if err := stream.Send(&Message{Message: r.msg.Message, Pod: e.s.cfg.Pod}); err != nil {
				return err
			}
		}
	}
}

// ServeLineEcho accepts connections on ln and answers every line a client
// sends with "<pod>: <line>\n". It returns nil once ln is closed.
func (s *Server) ServeLineEcho(ln net.Listener) error {
	return acceptEach(ln, s.serveLineConn)
}

// acceptEach serves every connection ln accepts on its own goroutine,
// until ln is closed (nil) or fails.
func acceptEach(ln net.Listener, serve func(net.Conn)) error {
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return err
		}
		go serve(conn)
	}
}

func (s *Server) serveLineConn(conn net.Conn) {
	start := time.Now()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-s.draining:
			_ = conn.Close()
		case <-done:
		}
	}()
	defer conn.Close()

	var lines int
	rd := bufio.NewReader(conn)
	wr := bufio.NewWriter(conn)
	for {
		line, err := rd.ReadString('\n')
		if line != "" {
			lines++
			line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
			if _, werr := fmt.Fprintf(wr, "%s: %s\n", s.cfg.Pod, line); werr != nil {
				break
			}
			// Only flush when no further input is already buffered, so that
			// pipelined lines are answered in one write.
			if rd.Buffered() == 0 {
				if werr := wr.Flush(); werr != nil {
					break
				}
			}
		}
		if err != nil {
			_ = wr.Flush()
			break
		}
	}
	s.logf("pod=%s remote=%s proto=tcp lines=%d duration=%s",
		s.cfg.Pod, conn.RemoteAddr(), lines, time.Since(start).Round(time.Microsecond))
}
