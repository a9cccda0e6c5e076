package inspect

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tap"
)

// The record file (--record FILE) holds a wiretap's pairs, one JSON object
// a line, each with its own apiVersion and kind so a file appended to by
// several versions stays readable line by line.
const (
	RecordAPIVersion = "intercept.kubectl.dev/v1alpha1"
	RecordKind       = "WiretapExchange"
)

// MaxRecordLine bounds one line of a record file: two bodies of tap.BodyCap
// in base64, headers and a diff fit with room to spare.
const MaxRecordLine = 8 << 20

// Record is one line of a record file: a request a wiretap copied, the
// cluster's answer, the local app's (when it was sent) and their diff.
type Record struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	Time       time.Time `json:"time"`
	// Route is the wiretap route's marker.
	Route   string        `json:"route,omitempty"`
	Request RecordRequest `json:"request"`
	Cluster RecordAnswer  `json:"cluster"`
	// Local is nil when the request was not sent to the local app.
	Local *RecordAnswer `json:"local,omitempty"`
	Diff  *Diff         `json:"diff,omitempty"`
}

// RecordRequest is a recorded request; Header holds Host.
type RecordRequest struct {
	Method string      `json:"method"`
	Target string      `json:"target"`
	Proto  string      `json:"proto"`
	Header http.Header `json:"headers"`
	Body   RecordBody  `json:"body"`
}

// RecordAnswer is a recorded response.
type RecordAnswer struct {
	Status     int         `json:"status"`
	Header     http.Header `json:"headers"`
	Body       RecordBody  `json:"body"`
	DurationMS float64     `json:"duration_ms,omitempty"`
}

// RecordBody is a body as text (valid UTF-8) or base64, its full length
// and whether only its start was kept.
type RecordBody struct {
	Size      int64  `json:"size"`
	Truncated bool   `json:"truncated,omitempty"`
	Text      string `json:"text,omitempty"`
	Base64    []byte `json:"base64,omitempty"`
}

func recordBody(data []byte, size int64, truncated bool) RecordBody {
	b := RecordBody{Size: size, Truncated: truncated}
	if utf8.Valid(data) {
		b.Text = string(data)
	} else {
		b.Base64 = data
	}
	return b
}

// Data is the body's kept bytes.
func (b RecordBody) Data() []byte {
	if b.Base64 != nil {
		return b.Base64
	}
	return []byte(b.Text)
}

// Answer is a recorded response as Compare takes it.
func (a RecordAnswer) Answer() Answer {
	return Answer{Status: a.Status, Header: a.Header, Body: a.Body.Data(), Size: a.Body.Size, Truncated: a.Body.Truncated}
}

// Recorder appends a wiretap's pairs to a file. Credentials in headers are
// redacted (redact.go) unless it was opened with showSecrets: a record is
// a file that is kept and passed around. A replay leaves a redacted header
// out and says so (replay -H gives it back). Query parameters are kept as
// sent, since the request target must go out again unchanged.
type Recorder struct {
	mu          sync.Mutex
	f           *os.File
	showSecrets bool
}

// OpenRecorder opens path for appending (created 0600 when new).
func OpenRecorder(path string, showSecrets bool) (*Recorder, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the record file: %w; name a file in a directory you can write to", err)
	}
	return &Recorder{f: f, showSecrets: showSecrets}, nil
}

// Close closes the file.
func (r *Recorder) Close() error { return r.f.Close() }

// Write appends one pair: the copy, the local answer (nil: not sent) and
// the diff.
func (r *Recorder) Write(ex *tap.Exchange, local *Answer, diff *Diff) error {
	rec := Record{
		APIVersion: RecordAPIVersion, Kind: RecordKind, Time: ex.Time.UTC(), Route: ex.Route.Marker,
		Request: RecordRequest{
			Method: ex.Request.Method, Target: ex.Request.Target, Proto: ex.Request.Proto,
			Header: r.headers(ex.Request.Header),
			Body:   recordBody(ex.Request.Body.Data, ex.Request.Body.Size, ex.Request.Body.Truncated),
		},
		Cluster: RecordAnswer{
			Status: ex.Response.Status, Header: r.headers(ex.Response.Header),
			Body:       recordBody(ex.Response.Body.Data, ex.Response.Body.Size, ex.Response.Body.Truncated),
			DurationMS: float64(ex.Duration) / float64(time.Millisecond),
		},
		Diff: r.diff(diff),
	}
	if local != nil {
		rec.Local = &RecordAnswer{Status: local.Status, Header: r.headers(local.Header), Body: recordBody(local.Body, local.Size, local.Truncated)}
	}
	line, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encoding a recorded pair: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("writing the record file %s: %w; the pairs after this one are not recorded", r.f.Name(), err)
	}
	return nil
}

func (r *Recorder) headers(h http.Header) http.Header {
	if r.showSecrets {
		return h
	}
	return redact(h)
}

// diff redacts the values of credential headers in a diff.
func (r *Recorder) diff(d *Diff) *Diff {
	if r.showSecrets || d == nil {
		return d
	}
	return redactDiff(d)
}

func redactDiff(d *Diff) *Diff {
	out := *d
	out.Headers = nil
	for _, h := range d.Headers {
		if secretHeader(h.Name) {
			h.Cluster, h.Local = redactValues(h.Cluster), redactValues(h.Local)
		}
		out.Headers = append(out.Headers, h)
	}
	return &out
}

func redactValues(vs []string) []string {
	if vs == nil {
		return nil
	}
	out := make([]string, len(vs))
	for i := range out {
		out[i] = Redacted
	}
	return out
}

// ErrRecordFormat is a record file line that is not a pair this version
// reads.
var ErrRecordFormat = errors.New("not a wiretap record")

// ReadRecords calls fn for each pair in a record file, with its line
// number; blank lines are skipped. It stops at the first line that is not
// a record of this version, or at fn's first error.
func ReadRecords(r io.Reader, fn func(line int, rec Record) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 1; ; n++ {
		line, err := readRecordLine(br)
		if errors.Is(err, io.EOF) && len(line) == 0 {
			return nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("line %d: %w", n, err)
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(line, &rec); err != nil {
			return fmt.Errorf("line %d: %w: %w", n, ErrRecordFormat, err)
		}
		if rec.APIVersion != RecordAPIVersion || rec.Kind != RecordKind {
			return fmt.Errorf("line %d: %w: apiVersion %q kind %q, this version reads %s %s",
				n, ErrRecordFormat, rec.APIVersion, rec.Kind, RecordAPIVersion, RecordKind)
		}
		if err := fn(n, rec); err != nil {
			return err
		}
	}
}

func readRecordLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > MaxRecordLine {
			return nil, fmt.Errorf("%w: a line longer than %d bytes", ErrRecordFormat, MaxRecordLine)
		}
		line = append(line, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return line, err
	}
}
