package demo

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// CallResponse is the JSON body of the /call endpoint.
type CallResponse struct {
	Pod string `json:"pod"`
	// To is the URL called; Status its answer's status.
	To     string `json:"to"`
	Status int    `json:"status"`
	// Forwarded are the request headers passed on to To.
	Forwarded []string `json:"forwarded"`
	// Answer is To's answer: its JSON as it came, or a JSON string.
	Answer json.RawMessage `json:"answer,omitempty"`
}

// callTimeout bounds the request /call makes.
const callTimeout = 10 * time.Second

// handleCall makes the demo a service in the middle of a call graph: GET
// /call?to=URL&forward=NAME,NAME requests URL and answers with what URL
// answered (and its status). Of the caller's headers only those named in
// forward pass on, the way a service passes on only the headers its code or
// its tracing library knows: forward=baggage is an OpenTelemetry-instrumented
// service, no forward one that drops everything.
func (s *Server) handleCall(w http.ResponseWriter, r *http.Request) {
	to := r.URL.Query().Get("to")
	u, err := url.Parse(to)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		http.Error(w, "give the URL to call as ?to=http://HOST:PORT/PATH", http.StatusBadRequest)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, to, nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	forwarded := []string{}
	for _, name := range strings.Split(r.URL.Query().Get("forward"), ",") {
		name = http.CanonicalHeaderKey(strings.TrimSpace(name))
		if vs, ok := r.Header[name]; ok && name != "" {
			req.Header[name] = vs
			forwarded = append(forwarded, name)
		}
	}
	c := &http.Client{Timeout: callTimeout}
	resp, err := c.Do(req)
	if err != nil {
		http.Error(w, fmt.Sprintf("calling %s: %v", to, err), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	answer := json.RawMessage(body)
	if !json.Valid(body) {
		answer, _ = json.Marshal(string(body))
	}
	writeJSON(w, resp.StatusCode, CallResponse{Pod: s.cfg.Pod, To: to, Status: resp.StatusCode, Forwarded: forwarded, Answer: answer})
}
