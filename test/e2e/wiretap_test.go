//go:build e2e

package e2e

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// inspectorOf reads the inspector's address from the plugin's output.
func inspectorOf(t *testing.T, p *pluginProc) string {
	t.Helper()
	m := regexp.MustCompile(`See each intercepted request at (http://127\.0\.0\.1:\d+/)`).FindStringSubmatch(p.output())
	if m == nil {
		t.Fatalf("no inspector address in the output:\n%s", p.output())
	}
	return m[1]
}

// wiretapCounts is the inspector's GET /api/wiretap.
type wiretapCounts struct {
	Copies, Compared, Differ, Dropped uint64
}

func countsOf(t *testing.T, inspector string) wiretapCounts {
	t.Helper()
	resp, err := http.Get(inspector + "api/wiretap")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var c wiretapCounts
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

// Two developers wiretap one marker: each gets a copy of all 20 requests
// that carry it, while every caller gets the cluster's answer; requests
// without it are not copied.
func TestWiretapTwoDevelopers(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{})
	before := takeSnapshot(t, ns, "demo")

	var got [2]atomic.Int32
	var ports [2]string
	for i := range got {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got[i].Add(1)
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"pod":"laptop"}`)
		}))
		t.Cleanup(srv.Close)
		_, ports[i], _ = net.SplitHostPort(srv.Listener.Addr().String())
	}
	var procs []*pluginProc
	for i := range ports {
		p := startPlugin(t, "svc/demo", "-n", ns, "-l", ports[i], "-x", "x-dev:team", "--wiretap", "--inspect", "127.0.0.1:0", "-w")
		p.waitOutput(t, "Wiretapping service", 2*time.Minute)
		procs = append(procs, p)
	}

	c := httpClient(30 * time.Second)
	for i := range 20 {
		req, _ := http.NewRequest(http.MethodPost, serviceURL(svc)+"orders/"+strconv.Itoa(i), strings.NewReader("tea"))
		req.Header.Set("X-Dev", "team")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || strings.Contains(string(body), "laptop") || !strings.Contains(string(body), `"path": "/orders/`+strconv.Itoa(i)+`"`) {
			t.Fatalf("request %d: the caller got %d %s, want the cluster's answer", i, resp.StatusCode, body)
		}
	}
	if e, _, err := get(serviceURL(svc)+"unmarked", nil); err != nil || e.Pod == "laptop" {
		t.Fatalf("an unmarked request: %+v, %v", e, err)
	}
	for i, p := range procs {
		inspector := inspectorOf(t, p)
		waitFor(t, 30*time.Second, "20 copies compared by developer "+strconv.Itoa(i), func() bool {
			return countsOf(t, inspector).Compared == 20
		})
		if n := got[i].Load(); n != 20 {
			t.Errorf("developer %d's local service got %d requests, want the 20 copies", i, n)
		}
		if c := countsOf(t, inspector); c.Copies != 20 || c.Differ != 20 || c.Dropped != 0 {
			t.Errorf("developer %d's inspector counts %+v, want 20 copies, all differing, none dropped", i, c)
		}
	}
	for _, p := range procs {
		p.interrupt(t)
	}
	assertRestored(t, ns, "demo", before)
}

// A local build that changes one field: the inspector's diff names it and
// nothing else (what differs between any two answers ignored); --record
// keeps the pairs, and replay sends them to a build that changes it
// (differ, exit code 1) and to one that does not (none differ).
func TestWiretapDiffRecordReplay(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{})
	before := takeSnapshot(t, ns, "demo")

	// A build of the demo: the cluster's own answer (asked without the
	// marker, so it is not copied again), its message changed or not.
	build := func(change bool) string {
		c := httpClient(30 * time.Second)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			req, _ := http.NewRequest(r.Method, serviceURL(svc)+strings.TrimPrefix(r.URL.RequestURI(), "/"), r.Body)
			resp, err := c.Do(req)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			var body map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			if change {
				body["message"] = "changed by the local build"
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(resp.StatusCode)
			json.NewEncoder(w).Encode(body)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	changed, same := build(true), build(false)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(changed, "http://"))
	record := filepath.Join(t.TempDir(), "staging.jsonl")
	ignore := []string{"--ignore", "$.pod", "--ignore", "$.remote", "--ignore", "$.headers", "--ignore", "$.host", "--ignore", "header:X-Demo-Pod"}

	p := startPlugin(t, append([]string{"svc/demo", "-n", ns, "-l", port, "-x", "x-dev:carol", "--wiretap", "--record", record,
		"--inspect", "127.0.0.1:0", "-w"}, ignore...)...)
	p.waitOutput(t, "Wiretapping service", 2*time.Minute)
	inspector := inspectorOf(t, p)
	c := httpClient(30 * time.Second)
	for i := range 5 {
		req, _ := http.NewRequest(http.MethodGet, serviceURL(svc)+"items/"+strconv.Itoa(i)+"?q=1", nil)
		req.Header.Set("X-Dev", "carol")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	waitFor(t, 30*time.Second, "5 copies compared", func() bool { return countsOf(t, inspector).Compared == 5 })
	if c := countsOf(t, inspector); c.Differ != 5 {
		t.Fatalf("inspector counts %+v, want 5 differing", c)
	}
	resp, err := http.Get(inspector + "api/exchanges")
	if err != nil {
		t.Fatal(err)
	}
	var list []struct {
		ID   int    `json:"id"`
		Diff string `json:"diff"`
	}
	json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if len(list) != 5 || list[0].Diff != "body $.message" {
		t.Fatalf("the inspector's list: %+v, want 5 whose diff is body $.message", list)
	}
	p.interrupt(t)
	assertRestored(t, ns, "demo", before)

	raw, err := os.ReadFile(record)
	if err != nil || strings.Count(string(raw), "\n") != 5 {
		t.Fatalf("the record holds %q (%v), want 5 lines", raw, err)
	}
	out, err := runPlugin(t, append([]string{"replay", record, "--against", changed}, ignore...)...)
	if err == nil || !strings.Contains(out, "5 sent to "+changed+", 5 differ.") || !strings.Contains(out, "$.message: cluster ") {
		t.Errorf("replay against the changed build (err %v):\n%s", err, out)
	}
	out, err = runPlugin(t, append([]string{"replay", record, "--against", same}, ignore...)...)
	if err != nil || !strings.Contains(out, "5 sent to "+same+", 0 differ.") {
		t.Errorf("replay against a build that changes nothing (err %v):\n%s", err, out)
	}
}
