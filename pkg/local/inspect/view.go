package inspect

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// hexPreviewLen is how much of a binary body the page shows as hex.
const hexPreviewLen = 512

// bodyView is a captured body as the page shows it.
type bodyView struct {
	// Size is the whole body's length, Captured what was kept of it.
	Size      int64
	Captured  int
	Truncated bool
	Binary    bool
	// Text is the body for display (JSON indented when complete);
	// Hex a dump of the start of a binary body.
	Text string
	Hex  string
}

func viewBody(b Body, size int64, contentType string) bodyView {
	v := bodyView{Size: size, Captured: len(b.Data), Truncated: b.Truncated, Binary: isBinary(b.Data, b.Truncated)}
	switch {
	case v.Binary:
		v.Hex = hex.Dump(b.Data[:min(len(b.Data), hexPreviewLen)])
	case !b.Truncated && strings.Contains(contentType, "json") && json.Valid(b.Data):
		var out bytes.Buffer
		if json.Indent(&out, b.Data, "", "  ") == nil {
			v.Text = out.String()
			break
		}
		fallthrough
	default:
		v.Text = string(b.Data)
	}
	return v
}

// isBinary tells bytes a person can read from those they cannot: text is
// valid UTF-8 without control characters other than whitespace and ESC
// (colored logs). A capture cut short may end inside a character, which is
// not held against it.
func isBinary(data []byte, truncated bool) bool {
	if truncated {
		for i := 1; i < utf8.UTFMax && i <= len(data); i++ {
			if utf8.RuneStart(data[len(data)-i]) {
				if !utf8.FullRune(data[len(data)-i:]) {
					data = data[:len(data)-i]
				}
				break
			}
		}
	}
	if !utf8.Valid(data) {
		return true
	}
	for _, c := range data {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != 0x1b || c == 0x7f {
			return true
		}
	}
	return false
}

// headerLine is one header value; a header with several values gives
// several lines, as it was sent.
type headerLine struct{ Name, Value string }

func headerLines(h http.Header) []headerLine {
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	slices.Sort(names)
	var lines []headerLine
	for _, name := range names {
		for _, v := range h[name] {
			lines = append(lines, headerLine{name, v})
		}
	}
	return lines
}

// detailView is one exchange as the detail pane shows it.
type detailView struct {
	Exchange
	ReqHeaders, RespHeaders, RespTrailers []headerLine
	ReqBody, RespBody                     bodyView
	// ReplayBlocked says why the exchange cannot be replayed ("" if it can).
	ReplayBlocked string
	// For a wiretap's copy: the cluster's answer and the diff.
	ClusterHeaders []headerLine
	ClusterBody    bodyView
	DiffLines      []diffLine
}

// diffLine is one difference as the page lists it.
type diffLine struct{ What, Cluster, Local string }

func diffLines(d *Diff) []diffLine {
	if !d.Differs() {
		return nil
	}
	var out []diffLine
	if d.Status != nil {
		out = append(out, diffLine{"status", strconv.Itoa(d.Status.Cluster), strconv.Itoa(d.Status.Local)})
	}
	absent := func(vs []string) string {
		if vs == nil {
			return "(absent)"
		}
		return strings.Join(vs, ", ")
	}
	for _, h := range d.Headers {
		out = append(out, diffLine{"header " + h.Name, absent(h.Cluster), absent(h.Local)})
	}
	if b := d.Body; b != nil {
		for _, p := range b.Paths {
			c, l := p.Cluster, p.Local
			if c == "" {
				c = "(absent)"
			}
			if l == "" {
				l = "(absent)"
			}
			out = append(out, diffLine{"body " + p.Path, c, l})
		}
		if b.More > 0 {
			out = append(out, diffLine{fmt.Sprintf("and %d more in the body", b.More), "", ""})
		}
		if len(b.Paths) == 0 {
			what := fmt.Sprintf("body, from byte %d", b.Offset)
			if b.Note != "" {
				what = "body: " + b.Note
			}
			out = append(out, diffLine{what, formatSize(b.ClusterSize), formatSize(b.LocalSize)})
		}
	}
	return out
}

func newDetailView(ex Exchange, canReplay bool) detailView {
	return detailView{
		Exchange:      ex,
		ReqHeaders:    headerLines(ex.RequestHeader),
		RespHeaders:   headerLines(ex.ResponseHeader),
		RespTrailers:  headerLines(ex.ResponseTrailer),
		ReqBody:       viewBody(ex.RequestBody, ex.RequestSize, ex.RequestHeader.Get("Content-Type")),
		RespBody:      viewBody(ex.ResponseBody, ex.ResponseSize, ex.ResponseHeader.Get("Content-Type")),
		ReplayBlocked: replayBlocked(&ex, canReplay),
	}.withCluster()
}

func (v detailView) withCluster() detailView {
	w := v.Wiretap
	if w == nil {
		return v
	}
	v.ClusterHeaders = headerLines(w.Header)
	v.ClusterBody = viewBody(w.Body, w.Size, w.Header.Get("Content-Type"))
	v.DiffLines = diffLines(w.Diff)
	return v
}

// replayBlocked says why ex cannot be sent again, or "" when it can.
func replayBlocked(ex *Exchange, canReplay bool) string {
	switch {
	case !canReplay:
		return "Replay is off: this inspector has no forwarder to send requests through."
	case !ex.Done:
		return "The request is still in flight; replay it once it has finished."
	case ex.Upgraded():
		return "An upgraded connection (WebSocket) cannot be replayed."
	case ex.RequestBody.Truncated:
		return fmt.Sprintf("Only the first %s of the %s request body were kept, so it cannot be sent again as it was.",
			formatSize(int64(len(ex.RequestBody.Data))), formatSize(ex.RequestSize))
	}
	return ""
}

func formatClock(t time.Time) string { return t.Local().Format("15:04:05.000") }

func formatStamp(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05.000 MST") }

// formatDuration keeps two or three significant digits: enough to compare
// requests at a glance.
func formatDuration(ex Exchange) string {
	if !ex.Done {
		return "…"
	}
	d := ex.Duration
	switch {
	case d < time.Millisecond:
		return strconv.FormatInt(d.Microseconds(), 10) + " µs"
	case d < 10*time.Millisecond:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + " ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + " s"
	}
	return d.Round(time.Second).String()
}

func formatSize(n int64) string {
	switch {
	case n < 1<<10:
		return strconv.FormatInt(n, 10) + " B"
	case n < 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KiB"
	case n < 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	}
	return strconv.FormatFloat(float64(n)/(1<<30), 'f', 1, 64) + " GiB"
}

// statusText is the list's status cell: the code, "…" while waiting, ERR
// when there was no answer at all.
func statusText(ex Exchange) string {
	switch {
	case ex.Status != 0:
		return strconv.Itoa(ex.Status)
	case !ex.Done:
		return "…"
	}
	return "ERR"
}

// statusClass names the status for styling: s2xx, s4xx, pending, err.
func statusClass(ex Exchange) string {
	switch {
	case ex.Status != 0:
		return "s" + strconv.Itoa(ex.Status/100) + "xx"
	case !ex.Done:
		return "pending"
	}
	return "err"
}
