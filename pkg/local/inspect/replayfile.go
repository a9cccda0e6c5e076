package inspect

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tap"
)

// ReplayTarget sends recorded requests again, to another build of the
// app, and compares its answers with the cluster's recorded ones
// (kubectl intercept replay).
type ReplayTarget struct {
	base   *url.URL
	ignore Ignore
	header http.Header
	h1, h2 *http.Client
}

// NewReplayTarget returns a target at base (http or https, host and an
// optional path prefix). Each request goes to base's host with base's path
// before the recorded target; Host is base's host. header is set on every
// request, replacing what was recorded (credentials the record redacted).
func NewReplayTarget(base *url.URL, ig Ignore, header http.Header, timeout time.Duration) *ReplayTarget {
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	// The answer is compared as the cluster sent it: no decompression, no
	// redirects followed.
	h1 := &http.Transport{Proxy: http.ProxyFromEnvironment, DisableCompression: true}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	p.SetHTTP2(true)
	h2 := &http.Transport{Proxy: http.ProxyFromEnvironment, DisableCompression: true, Protocols: &p}
	return &ReplayTarget{
		base: base, ignore: ig, header: header,
		h1: &http.Client{Transport: h1, CheckRedirect: noRedirect, Timeout: timeout},
		h2: &http.Client{Transport: h2, CheckRedirect: noRedirect, Timeout: timeout},
	}
}

// ReplayResult is what became of one recorded request.
type ReplayResult struct {
	// Line is the record's line in its file.
	Line   int    `json:"line"`
	Method string `json:"method"`
	Target string `json:"target"`
	// Status is the target's answer (0 when none).
	Status int `json:"status,omitempty"`
	// Diff is how it differs from the cluster's recorded answer.
	Diff *Diff `json:"diff,omitempty"`
	// NotSent says why the request could not be sent as recorded.
	NotSent string `json:"notSent,omitempty"`
	// Error says why the request got no answer: a difference too.
	Error string `json:"error,omitempty"`
	// Redacted names the recorded headers left out because the record
	// holds them redacted (replay -H gives them back).
	Redacted []string `json:"redacted,omitempty"`
}

// Differs says whether the answer differed from the cluster's, or there
// was none; a request not sent does not differ.
func (r ReplayResult) Differs() bool { return r.Error != "" || r.Diff.Differs() }

// Send sends one recorded request and compares the answer.
func (t *ReplayTarget) Send(ctx context.Context, line int, rec Record) ReplayResult {
	res := ReplayResult{Line: line, Method: rec.Request.Method, Target: rec.Request.Target}
	if rec.Request.Body.Truncated {
		res.NotSent = fmt.Sprintf("only the first %s of its %s body were recorded", formatSize(int64(len(rec.Request.Body.Data()))), formatSize(rec.Request.Body.Size))
		return res
	}
	u, err := t.url(rec.Request.Target)
	if err != nil {
		res.NotSent = err.Error()
		return res
	}
	body := rec.Request.Body.Data()
	req, err := http.NewRequestWithContext(ctx, rec.Request.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		res.NotSent = err.Error()
		return res
	}
	if len(body) == 0 {
		req.Body, req.GetBody = http.NoBody, nil
	}
	for name, vs := range rec.Request.Header {
		switch {
		case http.CanonicalHeaderKey(name) == "Host", hopByHop(name):
			continue
		case allRedacted(vs):
			res.Redacted = append(res.Redacted, name)
			continue
		}
		req.Header[name] = slices.Clone(vs)
	}
	for name, vs := range t.header {
		req.Header[name] = slices.Clone(vs)
		res.Redacted = slices.DeleteFunc(res.Redacted, func(n string) bool { return http.CanonicalHeaderKey(n) == name })
	}
	slices.Sort(res.Redacted)
	c := t.h1
	if rec.Request.Proto == "HTTP/2.0" {
		c = t.h2
	}
	resp, err := c.Do(req)
	if err != nil {
		res.Error = fmt.Sprintf("no answer from %s: %v", t.base.Host, err)
		return res
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(io.LimitReader(resp.Body, tap.BodyCap))
	size := int64(len(got))
	if err == nil {
		var rest int64
		rest, err = io.Copy(io.Discard, resp.Body)
		size += rest
	}
	if err != nil {
		res.Error = fmt.Sprintf("the answer from %s broke off after %d bytes: %v", t.base.Host, size, err)
		return res
	}
	res.Status = resp.StatusCode
	header := resp.Header.Clone()
	for name, vs := range resp.Trailer {
		header[name] = vs
	}
	local := Answer{Status: resp.StatusCode, Header: header, Body: got, Size: size, Truncated: size > int64(len(got))}
	// A header the record holds redacted cannot be compared.
	ig := t.ignore
	ig.Headers = maps.Clone(ig.Headers)
	if ig.Headers == nil {
		ig.Headers = map[string]bool{}
	}
	for name, vs := range rec.Cluster.Header {
		if allRedacted(vs) {
			ig.Headers[http.CanonicalHeaderKey(name)] = true
		}
	}
	res.Diff = Compare(rec.Cluster.Answer(), local, ig)
	if !res.Diff.Differs() {
		res.Diff = nil
	}
	return res
}

func allRedacted(vs []string) bool {
	for _, v := range vs {
		if v != Redacted && v != tap.Redacted {
			return false
		}
	}
	return len(vs) > 0
}

// hopByHop are request headers that belong to one connection.
func hopByHop(name string) bool {
	switch http.CanonicalHeaderKey(name) {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length":
		return true
	}
	return false
}

func (t *ReplayTarget) url(target string) (*url.URL, error) {
	ref, err := url.ParseRequestURI(target)
	if err != nil || !strings.HasPrefix(target, "/") {
		return nil, fmt.Errorf("the recorded target %q is not a path", target)
	}
	u := *t.base
	u.Path = strings.TrimSuffix(t.base.Path, "/") + ref.Path
	if ref.RawPath != "" {
		u.RawPath = strings.TrimSuffix(t.base.EscapedPath(), "/") + ref.RawPath
	} else {
		u.RawPath = ""
	}
	u.RawQuery = ref.RawQuery
	u.Fragment = ""
	return &u, nil
}
