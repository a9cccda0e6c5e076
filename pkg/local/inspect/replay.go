package inspect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// replayTimeout bounds a replayed request from start to its last byte; the
// inspector answers as soon as the response head is in, and the rest goes
// on in the background.
const replayTimeout = 2 * time.Minute

// replayError is a replay that did not happen, with the HTTP status that
// says why.
type replayError struct {
	code int
	msg  string
}

func (e *replayError) Error() string { return e.msg }

// replayed is the exchange a replay made.
type replayed struct {
	ID     uint64 `json:"id"`
	Of     uint64 `json:"replay_of"`
	Status int    `json:"status"`
}

// replay sends exchange id again through the forwarder, so it reaches the
// app and is recorded as a new exchange marked as a replay.
func (u *ui) replay(ctx context.Context, id uint64) (replayed, error) {
	ex, ok := u.store.Get(id)
	if !ok {
		return replayed{}, &replayError{http.StatusNotFound, fmt.Sprintf("exchange %d is not kept any more (the inspector keeps the last %d)", id, u.store.Limit())}
	}
	if why := replayBlocked(&ex, u.forwarder != nil); why != "" {
		code := http.StatusConflict
		if u.forwarder == nil {
			code = http.StatusServiceUnavailable
		}
		return replayed{}, &replayError{code, why}
	}
	req, err := replayRequest(ex)
	if err != nil {
		return replayed{}, &replayError{http.StatusConflict, err.Error()}
	}

	// A fresh context: the replay outlives this request when the response
	// streams, and must not look like one served by the UI's server (the
	// proxy would then panic on a broken body, with nobody to recover).
	rctx, cancel := context.WithTimeout(context.Background(), replayTimeout)
	note := &replayNote{of: id}
	req = req.WithContext(withReplay(rctx, note))
	w := newReplayWriter()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cancel()
		defer func() {
			//nolint:errorlint // recover hands back the very value panicked with, as net/http compares it
			if p := recover(); p != nil && p != http.ErrAbortHandler {
				panic(p)
			}
		}()
		u.forwarder.ServeHTTP(w, req)
	}()
	select {
	case <-w.wrote:
	case <-done:
	case <-ctx.Done():
		return replayed{}, &replayError{http.StatusGatewayTimeout, "gave up waiting for the app to answer the replay"}
	}
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	return replayed{ID: note.id, Of: id, Status: status}, nil
}

// replayRequest rebuilds a recorded request as the server would have handed
// it to the forwarder.
func replayRequest(ex Exchange) (*http.Request, error) {
	u, err := url.ParseRequestURI(ex.Path)
	if err != nil {
		return nil, fmt.Errorf("the recorded path %q cannot be sent again: %w", ex.Path, err)
	}
	major, minor, ok := http.ParseHTTPVersion(ex.Proto)
	if !ok {
		major, minor = 1, 1
	}
	req := &http.Request{
		Method: ex.Method, URL: u, RequestURI: ex.Path, Host: ex.Host,
		Proto: ex.Proto, ProtoMajor: major, ProtoMinor: minor,
		Header:        ex.RequestHeader.Clone(),
		Body:          http.NoBody,
		ContentLength: int64(len(ex.RequestBody.Data)),
	}
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if len(ex.RequestBody.Data) > 0 {
		req.Body = io.NopCloser(bytes.NewReader(ex.RequestBody.Data))
	}
	return req, nil
}

// replayWriter drops the replayed response (the forwarder records it) and
// signals when its head was written.
type replayWriter struct {
	header http.Header
	once   sync.Once
	wrote  chan struct{}
	status int
}

func newReplayWriter() *replayWriter {
	return &replayWriter{header: http.Header{}, wrote: make(chan struct{})}
}

func (w *replayWriter) Header() http.Header { return w.header }

func (w *replayWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 {
		return // informational; the final head follows
	}
	w.once.Do(func() {
		w.status = code
		close(w.wrote)
	})
}

func (w *replayWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(p), nil
}

// Flush lets the proxy stream into the writer.
func (w *replayWriter) Flush() {}

func replayErrorCode(err error) int {
	var re *replayError
	if errors.As(err, &re) {
		return re.code
	}
	return http.StatusInternalServerError
}
