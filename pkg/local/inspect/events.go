package inspect

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	// eventBatch is how long the stream gathers changes after one arrives,
	// so a burst of requests becomes one write instead of hundreds.
	eventBatch = 50 * time.Millisecond
	// eventKeepAlive is how often an idle stream writes a comment, so a
	// closed page is noticed and its goroutine ends.
	eventKeepAlive = 20 * time.Second
)

// events streams the list's changes as server-sent events, filtered by
// ?path= and ?status=, from ?since= (a page's data-seq; 0 for everything
// kept):
//
//	event: row     data: the <tr> of an exchange added or changed
//	event: remove  data: ID of an exchange that no longer matches the filter
//	event: evict   data: ID of the oldest exchange kept; drop older rows
//	event: invalid data: why the filter is not understood (then nothing more)
func (u *ui) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	since, _ := strconv.ParseUint(q.Get("since"), 10, 64)
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)

	f, err := ParseFilter(q.Get("path"), q.Get("status"))
	if err != nil {
		// Ending the stream would make the browser reconnect every few
		// seconds to hear the same thing; say it once and hold still.
		var b bytes.Buffer
		writeEvent(&b, "invalid", err.Error())
		w.Write(b.Bytes())
		rc.Flush()
		<-r.Context().Done()
		return
	}
	if err := rc.Flush(); err != nil {
		return
	}

	keepAlive := time.NewTicker(eventKeepAlive)
	defer keepAlive.Stop()
	var oldest uint64
	for {
		c := u.store.Since(since)
		since = c.Seq
		var b bytes.Buffer
		if c.Oldest != oldest {
			oldest = c.Oldest
			writeEvent(&b, "evict", strconv.FormatUint(oldest, 10))
		}
		for _, ex := range c.Exchanges {
			if !f.Match(&ex) {
				writeEvent(&b, "remove", strconv.FormatUint(ex.ID, 10))
				continue
			}
			var row bytes.Buffer
			if err := u.tmpl.ExecuteTemplate(&row, "row", u.shown(ex)); err != nil {
				return
			}
			writeEvent(&b, "row", row.String())
		}
		if b.Len() > 0 {
			if _, err := w.Write(b.Bytes()); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}

		select {
		case <-c.Next:
			select {
			case <-time.After(eventBatch):
			case <-r.Context().Done():
				return
			}
		case <-keepAlive.C:
			if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		case <-r.Context().Done():
			return
		}
	}
}

// writeEvent writes one server-sent event; every line of data gets its own
// "data:" field, which the browser joins again with newlines. A lone CR
// would also end a line there, so CRs go (the data is HTML or a message).
func writeEvent(b *bytes.Buffer, name, data string) {
	b.WriteString("event: ")
	b.WriteString(name)
	b.WriteByte('\n')
	data = strings.ReplaceAll(data, "\r", "")
	for line := range strings.Lines(data) {
		b.WriteString("data: ")
		b.WriteString(strings.TrimSuffix(line, "\n"))
		b.WriteByte('\n')
	}
	if data == "" {
		b.WriteString("data:\n")
	}
	b.WriteByte('\n')
}
