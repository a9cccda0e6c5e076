package proxy

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// benchRequest is the head of a typical browser request through an ingress,
// with the session cookies and the trace context of an instrumented app.
func benchRequest() http.Header {
	return http.Header{
		"Accept":          {"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
		"Accept-Encoding": {"gzip, deflate, br"},
		"Accept-Language": {"en-GB,en;q=0.9"},
		"User-Agent":      {"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"},
		"X-Request-Id":    {"5f1c0e4e-9a8d-4d43-8f55-6c0b3f1f2a11"},
		"X-Forwarded-For": {"10.0.0.1"},
		"Traceparent":     {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		"Cookie":          {"_ga=GA1.1.1234567890.1700000000; session=9f2c1a7e5b; theme=dark; consent=yes"},
		"Baggage":         {"userId=42,tenant=acme;ttl=30,isProduction=false"},
	}
}

// The routing decision for one request. With header routes only (two
// developers' -x) it must not allocate; cookie and baggage routes scan the
// header lines in place and do not allocate either.
func BenchmarkMatch(b *testing.B) {
	dial := func(context.Context) (net.Conn, error) { return nil, nil }
	headers := &Table{}
	headers.Add(route.Route{Header: "x-dev", Value: "alice"}, dial)
	headers.Add(route.Route{Header: "x-dev", Value: "bob"}, dial)
	mixed := &Table{}
	mixed.Add(route.Route{Header: "x-dev", Value: "alice"}, dial)
	mixed.Add(route.Route{Cookie: "dev", Value: "bob"}, dial)
	mixed.Add(route.Route{Baggage: "dev", Value: "carol"}, dial)
	// The header route narrowed by a path prefix or a path regex (the
	// requests' path is /products/42).
	prefix := &Table{}
	prefix.Add(route.Route{Header: "x-dev", Value: "alice", PathPrefix: "/products/"}, dial)
	prefix.Add(route.Route{Header: "x-dev", Value: "bob", PathPrefix: "/products/"}, dial)
	regex := &Table{}
	regex.Add(route.Route{Header: "x-dev", Value: "alice", PathRegex: "/products/[0-9]+"}, dial)
	regex.Add(route.Route{Header: "x-dev", Value: "bob", PathRegex: "/products/[0-9]+"}, dial)

	with := func(k, v string) http.Header {
		h := benchRequest()
		h.Add(k, v)
		return h
	}
	for _, bc := range []struct {
		name  string
		table *Table
		h     http.Header
		hit   bool
	}{
		{"header-hit", headers, with("X-Dev", "bob"), true},
		{"header-miss", headers, benchRequest(), false},
		{"cookie-hit", mixed, with("Cookie", "dev=bob"), true},
		{"baggage-hit", mixed, with("Baggage", "dev=carol"), true},
		{"mixed-miss", mixed, benchRequest(), false},
		{"prefix-hit", prefix, with("X-Dev", "bob"), true},
		{"prefix-miss", prefix, benchRequest(), false},
		{"regex-hit", regex, with("X-Dev", "bob"), true},
		{"regex-miss", regex, benchRequest(), false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if (bc.table.match("GET", "/products/42?ref=home", bc.h) != nil) != bc.hit {
					b.Fatal("wrong routing decision")
				}
			}
		})
		// The same decision on the head as the fast path holds it.
		var head bytes.Buffer
		head.WriteString("GET /products/42?ref=home HTTP/1.1\r\nHost: shop.example.com\r\n")
		bc.h.Write(&head)
		head.WriteString("\r\n")
		raw := head.Bytes()
		b.Run(bc.name+"-raw", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if (bc.table.matchHead(raw) != nil) != bc.hit {
					b.Fatal("wrong routing decision")
				}
			}
		})
	}
}

// Reading and checking a browser-sized request head on the fast path, the
// work every request for the app costs besides the copy.
func BenchmarkFastHead(b *testing.B) {
	var head bytes.Buffer
	head.WriteString("GET /products/42?ref=home HTTP/1.1\r\nHost: shop.example.com\r\n")
	benchRequest().Write(&head)
	head.WriteString("\r\n")
	raw := head.Bytes()
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, ok := parseRequestHead(raw); !ok {
			b.Fatal("head refused")
		}
	}
}
