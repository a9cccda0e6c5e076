// Command upstream is the benchmark's stand-in for an app (and for a
// developer's laptop): a deliberately tiny HTTP/1.1 + h2c server, so the
// proxies, not the app, dominate what bench/run.sh measures.
//
//	GET /        a fixed small body (16 bytes)
//	GET /64k     a fixed 65536-byte body
//	GET /_count  how many / and /64k requests were served so far
//	GET /_taps   with --tap: "COPIES DROPPED", the wiretap copies read so
//	             far and the drops the sidecar reported on them
//
// With --tap ADDR it also reads wiretap streams (pkg/wire/tap) on ADDR, as
// a developer's end would, without decoding more of a copy than its drop
// count; --tap-delay makes it a slow developer, reading one copy per delay.
//
// Every answer carries X-Upstream: NAME, so a run can check its routing.
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	name := flag.String("name", "app", "value of the X-Upstream response header")
	tapAddr := flag.String("tap", "", "also read wiretap streams on this address")
	tapDelay := flag.Duration("tap-delay", 0, "with --tap: wait this long after each copy (a slow developer)")
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

	var copies, dropped atomic.Int64
	mux.HandleFunc("GET /_taps", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, copies.Load(), dropped.Load())
	})
	if *tapAddr != "" {
		tl, err := net.Listen("tcp", *tapAddr)
		if err != nil {
			log.Fatal(err)
		}
		go serveTaps(tl, *tapDelay, &copies, &dropped)
	}

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

// serveTaps reads tap streams: after the stream's magic, frames of a
// 4-byte length and an exchange whose first fields are varints: time,
// duration and the count of copies dropped before it.
func serveTaps(ln net.Listener, delay time.Duration, copies, dropped *atomic.Int64) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			br := bufio.NewReaderSize(c, 256<<10)
			if _, err := br.Discard(len("\x00ktap\x01")); err != nil {
				return
			}
			var frame []byte
			for {
				var n [4]byte
				if _, err := io.ReadFull(br, n[:]); err != nil {
					return
				}
				size := binary.BigEndian.Uint32(n[:])
				if size > 8<<20 {
					return
				}
				if uint32(cap(frame)) < size {
					frame = make([]byte, size)
				}
				frame = frame[:size]
				if _, err := io.ReadFull(br, frame); err != nil {
					return
				}
				_, k1 := binary.Varint(frame)
				_, k2 := binary.Uvarint(frame[max(k1, 0):])
				if d, k3 := binary.Uvarint(frame[max(k1+k2, 0):]); k1 > 0 && k2 > 0 && k3 > 0 {
					dropped.Add(int64(d))
				}
				copies.Add(1)
				if delay > 0 {
					time.Sleep(delay)
				}
			}
		}()
	}
}
