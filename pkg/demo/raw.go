package demo

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"time"
)

// maxRawHead bounds the request head ServeRawHead reads.
const maxRawHead = 64 << 10

// ServeRawHead answers every HTTP/1.1 request on ln with the request head
// exactly as it arrived on the wire: header names in their case and order,
// duplicates and all, which net/http does not keep. One request per
// connection; tests compare what an app receives with and without the
// sidecar in front of it.
func (s *Server) ServeRawHead(ln net.Listener) error {
	return acceptEach(ln, s.serveRawConn)
}

func (s *Server) serveRawConn(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	head, err := readHead(bufio.NewReader(conn))
	if err != nil {
		fmt.Fprintf(conn, "HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(err.Error()), err)
		return
	}
	fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n%s: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		PodHeader, s.cfg.Pod, len(head), head)
}

// readHead reads up to and including the blank line that ends a request
// head.
func readHead(rd *bufio.Reader) ([]byte, error) {
	var head []byte
	for {
		line, err := rd.ReadSlice('\n')
		head = append(head, line...)
		if err != nil {
			return nil, fmt.Errorf("reading the request head: %w", err)
		}
		if len(head) > maxRawHead {
			return nil, errors.New("request head too large")
		}
		if bytes.Equal(line, []byte("\r\n")) || bytes.Equal(line, []byte("\n")) {
			return head, nil
		}
	}
}
