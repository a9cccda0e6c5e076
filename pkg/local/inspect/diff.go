package inspect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tap"
)

// Answer is one side of a comparison: a status, headers and the start of
// a body (all of it unless Truncated), Size bytes in all.
type Answer struct {
	Status    int
	Header    http.Header
	Body      []byte
	Size      int64
	Truncated bool
}

// Diff is how the local app's answer differs from the cluster's.
type Diff struct {
	// Status is set when the status codes differ.
	Status *StatusDiff `json:"status,omitempty"`
	// Headers lists the response headers that differ, by name.
	Headers []HeaderDiff `json:"headers,omitempty"`
	// Body is set when the bodies differ.
	Body *BodyDiff `json:"body,omitempty"`
}

// StatusDiff is two status codes.
type StatusDiff struct {
	Cluster int `json:"cluster"`
	Local   int `json:"local"`
}

// HeaderDiff is one header's values on each side (nil: absent).
type HeaderDiff struct {
	Name    string   `json:"name"`
	Cluster []string `json:"cluster"`
	Local   []string `json:"local"`
}

// BodyDiff says how the bodies differ.
type BodyDiff struct {
	// JSON says both were JSON and compared as values; Paths then lists
	// where they differ (the first maxPathDiffs).
	JSON  bool       `json:"json"`
	Paths []PathDiff `json:"paths,omitempty"`
	// More counts the differing paths past those listed.
	More int `json:"more,omitempty"`
	// ClusterSize and LocalSize are the bodies' lengths.
	ClusterSize int64 `json:"cluster_size"`
	LocalSize   int64 `json:"local_size"`
	// Offset is where bodies compared byte for byte first differ.
	Offset int64 `json:"offset,omitempty"`
	// Note says what could not be compared.
	Note string `json:"note,omitempty"`
}

// PathDiff is one place two JSON bodies differ: the value on each side
// (JSON text, shortened past 200 bytes; "" when absent).
type PathDiff struct {
	Path    string `json:"path"`
	Cluster string `json:"cluster,omitempty"`
	Local   string `json:"local,omitempty"`
}

// Differs says whether anything differed.
func (d *Diff) Differs() bool {
	return d != nil && (d.Status != nil || len(d.Headers) > 0 || d.Body != nil)
}

// Summary is the diff in one line: "status 200→500, header Cache-Control,
// body $.price".
func (d *Diff) Summary() string {
	if !d.Differs() {
		return "same"
	}
	var parts []string
	if d.Status != nil {
		parts = append(parts, fmt.Sprintf("status %d→%d", d.Status.Cluster, d.Status.Local))
	}
	for _, h := range d.Headers {
		parts = append(parts, "header "+h.Name)
	}
	if b := d.Body; b != nil {
		switch {
		case len(b.Paths) > 0:
			paths := make([]string, len(b.Paths))
			for i, p := range b.Paths {
				paths[i] = p.Path
			}
			s := "body " + strings.Join(paths, " ")
			if b.More > 0 {
				s += fmt.Sprintf(" (+%d more)", b.More)
			}
			parts = append(parts, s)
		case b.Note != "":
			parts = append(parts, "body: "+b.Note)
		default:
			parts = append(parts, fmt.Sprintf("body (%d vs %d bytes, from byte %d)", b.ClusterSize, b.LocalSize, b.Offset))
		}
	}
	return strings.Join(parts, ", ")
}

// noiseHeaders differ between any two answers to the same request and are
// left out of the diff: the hop-by-hop headers (RFC 9110, 7.6.1) and those
// that follow the clock or the body's encoding (the bodies are compared
// themselves).
var noiseHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Proxy-Authenticate": true,
	"Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Date": true, "Age": true, "Expires": true, "Last-Modified": true, "Etag": true, "Content-Length": true,
}

// NoiseHeaders returns the response headers every diff leaves out, sorted.
func NoiseHeaders() []string {
	names := make([]string, 0, len(noiseHeaders))
	for n := range noiseHeaders {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// maxPathDiffs bounds the differing JSON paths a diff lists.
const maxPathDiffs = 20

// Compare diffs the local app's answer with the cluster's, leaving out the
// noise headers, the headers either names in Connection, and what ig says.
func Compare(cluster, local Answer, ig Ignore) *Diff {
	d := &Diff{}
	if cluster.Status != local.Status {
		d.Status = &StatusDiff{Cluster: cluster.Status, Local: local.Status}
	}
	d.Headers = compareHeaders(cluster.Header, local.Header, ig)
	d.Body = compareBodies(cluster, local, ig)
	return d
}

func compareHeaders(c, l http.Header, ig Ignore) []HeaderDiff {
	skip := func(name string) bool {
		// A credential the sidecar redacted in its copy cannot be compared.
		return noiseHeaders[name] || ig.Headers[name] || connectionNamed(c, name) || connectionNamed(l, name) || tap.AllRedacted(c.Values(name))
	}
	names := map[string]bool{}
	for _, h := range []http.Header{c, l} {
		for n := range h {
			names[http.CanonicalHeaderKey(n)] = true
		}
	}
	var out []HeaderDiff
	for _, n := range slices.Sorted(func(yield func(string) bool) {
		for n := range names {
			if !yield(n) {
				return
			}
		}
	}) {
		if skip(n) {
			continue
		}
		cv, lv := c.Values(n), l.Values(n)
		if !slices.Equal(cv, lv) {
			out = append(out, HeaderDiff{Name: n, Cluster: cv, Local: lv})
		}
	}
	return out
}

// connectionNamed says whether h's Connection header names name, which
// makes it hop-by-hop.
func connectionNamed(h http.Header, name string) bool {
	for _, v := range h.Values("Connection") {
		for f := range strings.SplitSeq(v, ",") {
			if http.CanonicalHeaderKey(strings.TrimSpace(f)) == name {
				return true
			}
		}
	}
	return false
}

// isJSON says whether a Content-Type names JSON (application/json,
// application/problem+json, ...).
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

func compareBodies(c, l Answer, ig Ignore) *BodyDiff {
	bd := &BodyDiff{ClusterSize: max(c.Size, int64(len(c.Body))), LocalSize: max(l.Size, int64(len(l.Body)))}
	whole := !c.Truncated && !l.Truncated
	if whole && (isJSON(c.Header.Get("Content-Type")) || isJSON(l.Header.Get("Content-Type"))) {
		cv, cerr := decodeJSON(c.Body)
		lv, lerr := decodeJSON(l.Body)
		if cerr == nil && lerr == nil {
			for _, p := range ig.Paths {
				cv, lv = p.remove(cv), p.remove(lv)
			}
			var paths []PathDiff
			more := 0
			diffJSON("$", cv, lv, &paths, &more)
			if len(paths) == 0 {
				return nil
			}
			bd.JSON, bd.Paths, bd.More = true, paths, more
			return bd
		}
		// One is not JSON after all: compare the bytes.
	}
	if bytes.Equal(c.Body, l.Body) && bd.ClusterSize == bd.LocalSize {
		return nil
	}
	n := min(len(c.Body), len(l.Body))
	i := 0
	for i < n && c.Body[i] == l.Body[i] {
		i++
	}
	bd.Offset = int64(i)
	if i == n && !whole && bd.ClusterSize != bd.LocalSize {
		bd.Note = fmt.Sprintf("the copied starts agree; the bodies are %d and %d bytes long", bd.ClusterSize, bd.LocalSize)
	}
	return bd
}

// decodeJSON reads one JSON value, numbers kept as written.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("more than one JSON value")
	}
	return v, nil
}

// diffJSON lists where two decoded JSON values differ: object members by
// name (order ignored), arrays element by element.
func diffJSON(path string, c, l any, out *[]PathDiff, more *int) {
	note := func() {
		if len(*out) >= maxPathDiffs {
			*more++
			return
		}
		*out = append(*out, PathDiff{Path: path, Cluster: shortJSON(c), Local: shortJSON(l)})
	}
	switch cx := c.(type) {
	case map[string]any:
		lx, ok := l.(map[string]any)
		if !ok {
			note()
			return
		}
		keys := map[string]bool{}
		for k := range cx {
			keys[k] = true
		}
		for k := range lx {
			keys[k] = true
		}
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range keys {
				if !yield(k) {
					return
				}
			}
		}) {
			cv, cok := cx[k]
			lv, lok := lx[k]
			sub := path + memberPath(k)
			if cok != lok {
				if len(*out) >= maxPathDiffs {
					*more++
					continue
				}
				pd := PathDiff{Path: sub}
				if cok {
					pd.Cluster = shortJSON(cv)
				}
				if lok {
					pd.Local = shortJSON(lv)
				}
				*out = append(*out, pd)
				continue
			}
			diffJSON(sub, cv, lv, out, more)
		}
	case []any:
		lx, ok := l.([]any)
		if !ok || len(cx) != len(lx) {
			note()
			return
		}
		for i := range cx {
			diffJSON(path+"["+strconv.Itoa(i)+"]", cx[i], lx[i], out, more)
		}
	case json.Number:
		lx, ok := l.(json.Number)
		if !ok || !sameNumber(cx, lx) {
			note()
		}
	case ignoredValue:
		if _, ok := l.(ignoredValue); !ok {
			note()
		}
	default: // string, bool, nil
		if c != l {
			note()
		}
	}
}

// sameNumber compares numbers by value: 1, 1.0 and 1e0 are the same.
func sameNumber(a, b json.Number) bool {
	if a == b {
		return true
	}
	x, _, errA := big.ParseFloat(string(a), 10, 256, big.ToNearestEven)
	y, _, errB := big.ParseFloat(string(b), 10, 256, big.ToNearestEven)
	return errA == nil && errB == nil && x.Cmp(y) == 0
}

// memberPath is .name, or ['name'] when name needs quoting.
func memberPath(k string) string {
	if name, n := pathName(k); n == len(k) && name != "" {
		return "." + k
	}
	return "['" + k + "']"
}

func shortJSON(v any) string {
	if _, ok := v.(ignoredValue); ok {
		return "(ignored)"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
