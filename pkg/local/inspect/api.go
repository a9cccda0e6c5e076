package inspect

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// summaryJSON is an exchange in the list API.
type summaryJSON struct {
	ID           uint64    `json:"id"`
	Time         time.Time `json:"time"`
	Method       string    `json:"method"`
	Path         string    `json:"path"`
	Proto        string    `json:"proto"`
	Host         string    `json:"host"`
	Route        string    `json:"route"`
	Status       int       `json:"status"`
	DurationMS   float64   `json:"duration_ms"`
	RequestSize  int64     `json:"request_size"`
	ResponseSize int64     `json:"response_size"`
	Done         bool      `json:"done"`
	Error        string    `json:"error,omitempty"`
	Replay       bool      `json:"replay"`
	ReplayOf     uint64    `json:"replay_of,omitempty"`
	// Wiretap marks a copy of a request the cluster answered; Differs
	// says whether the local app's answer differed (absent until
	// compared), Diff says how in one line.
	Wiretap bool   `json:"wiretap,omitempty"`
	Differs *bool  `json:"differs,omitempty"`
	Diff    string `json:"diff,omitempty"`
}

// detailJSON is one exchange with its headers and bodies.
type detailJSON struct {
	summaryJSON
	RequestHeader   http.Header `json:"request_headers"`
	RequestBody     bodyJSON    `json:"request_body"`
	ResponseHeader  http.Header `json:"response_headers"`
	ResponseTrailer http.Header `json:"response_trailers,omitempty"`
	ResponseBody    bodyJSON    `json:"response_body"`
	// ReplayBlocked says why POST .../replay would be refused.
	ReplayBlocked string `json:"replay_blocked,omitempty"`
	// Cluster is a wiretap copy's answer from the cluster, DiffDetail how
	// the local app's (the response above) differs from it.
	Cluster    *clusterJSON `json:"cluster,omitempty"`
	DiffDetail *Diff        `json:"diff_detail,omitempty"`
}

// clusterJSON is the cluster's answer to a copied request.
type clusterJSON struct {
	Marker     string      `json:"route"`
	Status     int         `json:"status"`
	Header     http.Header `json:"headers"`
	Body       bodyJSON    `json:"body"`
	DurationMS float64     `json:"duration_ms"`
	// NotSent says why the request did not go to the local app.
	NotSent string `json:"not_sent,omitempty"`
	// Dropped counts the copies the sidecar dropped just before this one.
	Dropped uint64 `json:"dropped,omitempty"`
}

// bodyJSON is a captured body: text when readable, base64 when binary.
type bodyJSON struct {
	Size      int64  `json:"size"`
	Captured  int    `json:"captured"`
	Truncated bool   `json:"truncated"`
	Binary    bool   `json:"binary"`
	Text      string `json:"text,omitempty"`
	Base64    []byte `json:"base64,omitempty"`
}

func summaryOf(ex Exchange) summaryJSON {
	return summaryJSON{
		ID: ex.ID, Time: ex.Time, Method: ex.Method, Path: ex.Path, Proto: ex.Proto, Host: ex.Host,
		Route: ex.Route, Status: ex.Status, DurationMS: float64(ex.Duration) / float64(time.Millisecond),
		RequestSize: ex.RequestSize, ResponseSize: ex.ResponseSize, Done: ex.Done, Error: ex.Error,
		Replay: ex.Replay, ReplayOf: ex.ReplayOf,
	}.withWiretap(ex.Wiretap)
}

func (j summaryJSON) withWiretap(w *WiretapCopy) summaryJSON {
	if w == nil {
		return j
	}
	j.Wiretap = true
	if w.Diff != nil {
		differs := w.Diff.Differs()
		j.Differs, j.Diff = &differs, w.Diff.Summary()
	}
	return j
}

func bodyOf(b Body, size int64) bodyJSON {
	j := bodyJSON{Size: size, Captured: len(b.Data), Truncated: b.Truncated, Binary: isBinary(b.Data, b.Truncated)}
	if j.Binary {
		j.Base64 = b.Data
	} else {
		j.Text = string(b.Data)
	}
	return j
}

func detailOf(ex Exchange, canReplay bool) detailJSON {
	return detailJSON{
		summaryJSON:     summaryOf(ex),
		RequestHeader:   ex.RequestHeader,
		RequestBody:     bodyOf(ex.RequestBody, ex.RequestSize),
		ResponseHeader:  ex.ResponseHeader,
		ResponseTrailer: ex.ResponseTrailer,
		ResponseBody:    bodyOf(ex.ResponseBody, ex.ResponseSize),
		ReplayBlocked:   replayBlocked(&ex, canReplay),
	}.withCluster(ex.Wiretap)
}

func (j detailJSON) withCluster(w *WiretapCopy) detailJSON {
	if w == nil {
		return j
	}
	j.Cluster = &clusterJSON{
		Marker: w.Marker, Status: w.Status, Header: w.Header, Body: bodyOf(w.Body, w.Size),
		DurationMS: float64(w.Duration) / float64(time.Millisecond), NotSent: w.NotSent, Dropped: w.Dropped,
	}
	j.DiffDetail = w.Diff
	return j
}

// apiWiretap answers the wiretap's totals: copies received, compared,
// differing, not sent, dropped by the sidecar.
func (u *ui) apiWiretap(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, u.store.WiretapCounts())
}

// apiList answers the kept exchanges, newest first, filtered like the page
// (?path=, ?status=).
func (u *ui) apiList(w http.ResponseWriter, r *http.Request) {
	f, err := ParseFilter(r.URL.Query().Get("path"), r.URL.Query().Get("status"))
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	list := []summaryJSON{}
	for _, ex := range u.store.List() {
		if f.Match(&ex) {
			list = append(list, summaryOf(u.shown(ex)))
		}
	}
	writeJSON(w, http.StatusOK, list)
}

func (u *ui) apiGet(w http.ResponseWriter, r *http.Request) {
	ex, ok := u.lookup(r.PathValue("id"))
	if !ok {
		writeJSONError(w, http.StatusNotFound, "no exchange "+strconv.Quote(r.PathValue("id"))+" is kept")
		return
	}
	writeJSON(w, http.StatusOK, detailOf(u.shown(ex), u.forwarder != nil))
}

// apiReplay answers {"id", "replay_of", "status"} of the new exchange once
// the app's response head is in.
func (u *ui) apiReplay(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		writeJSONError(w, http.StatusNotFound, "no exchange "+strconv.Quote(r.PathValue("id"))+" is kept")
		return
	}
	res, err := u.replay(r.Context(), id)
	if err != nil {
		writeJSONError(w, replayErrorCode(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		writeJSONError(w, http.StatusInternalServerError, "inspector: encoding the answer: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}
