// Command upstream is the benchmark's stand-in for an app (and for a
// developer's laptop): a deliberately tiny HTTP/1.1 + h2c server, so the
// proxies, not the app, dominate what bench/run.sh measures.
//
//	GET /        a fixed small body (16 bytes)
//	GET /64k     a fixed 65536-byte body
//	GET /_count  how many / and /64k requests were served so far
//
// Every answer carries X-Upstream: NAME, so a run can check its routing.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	name := flag.String("name", "app", "value of the X-Upstream response header")
	flag.Parse()

	small := []byte("hello, upstream\n") // 16 bytes
	big := bytes.Repeat([]byte("0123456789abcdef"), 64*1024/16)
	var served atomic.Int64

	body := func(b []byte) http.HandlerFunc {
		length := strconv.Itoa(len(b))
		return func(w http.ResponseWriter, _ *http.Request) {
			served.Add(1)
			h := w.Header()
			h["Content-Type"] = []string{"text/plain"}
			h["Content-Length"] = []string{length}
			h["X-Upstream"] = []string{*name}
			w.Write(b)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", body(small))
	mux.HandleFunc("GET /64k", body(big))
	mux.HandleFunc("GET /_count", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, served.Load())
	})

	srv := &http.Server{Handler: mux}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv.Protocols = &p

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM, os.Interrupt)
		<-c
		srv.Close()
	}()
	fmt.Fprintf(os.Stderr, "upstream %s serving on %s\n", *name, ln.Addr())
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
