package local

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/inspect"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tap"
)

// With a wiretap route the front takes the sidecar's copies off the
// tunnel: the local app answers each, and --record keeps the pair with
// its diff (--ignore applied).
func TestFrontWiretapRecords(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"price":11,"at":"now"}`)
	}))
	defer app.Close()
	port, _ := strconv.Atoi(app.URL[strings.LastIndex(app.URL, ":")+1:])
	record := filepath.Join(t.TempDir(), "pairs.jsonl")
	f, err := OpenFront(context.Background(), FrontOptions{LocalPort: port, Route: route.Route{All: true, Wiretap: true},
		Tunnel: TunnelBuiltin, Inspect: InspectOff, Ignore: []string{"$.at"}, Record: record})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	sidecar, cli := net.Pipe()
	go f.Conn(cli)
	err = tap.NewWriter(sidecar).Write(&tap.Exchange{
		Time:    time.Now(),
		Request: tap.Request{Method: "GET", Target: "/price", Proto: "HTTP/1.1", Header: http.Header{"Host": {"shop"}}},
		Response: tap.Response{Status: 200, Header: http.Header{"Content-Type": {"application/json"}},
			Body: tap.CapBody([]byte(`{"price":10,"at":"then"}`), 24)},
	})
	if err != nil {
		t.Fatal(err)
	}
	sidecar.Close()

	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(record)
		if line, _, ok := strings.Cut(string(b), "\n"); ok {
			var rec inspect.Record
			if err := json.NewDecoder(bufio.NewReader(strings.NewReader(line))).Decode(&rec); err != nil {
				t.Fatal(err)
			}
			if rec.Diff.Summary() != "body $.price" || rec.Local == nil || rec.Local.Status != 200 {
				t.Fatalf("recorded %+v, diff %s", rec, rec.Diff.Summary())
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing recorded")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
