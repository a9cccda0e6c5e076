package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/internal/golden"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local"
)

// recordFile writes a record of three pairs: orders 1 and 2 (the cluster
// answered price 10 for both), and an upload whose body was cut.
func recordFile(t *testing.T) string {
	t.Helper()
	line := func(method, target, reqBody string, truncated bool, clusterBody string) string {
		rec := map[string]any{
			"apiVersion": "intercept.kubectl.dev/v1alpha1", "kind": "WiretapExchange", "time": "2026-12-07T10:00:00Z", "route": "X-Dev:alice",
			"request": map[string]any{"method": method, "target": target, "proto": "HTTP/1.1",
				"headers": map[string][]string{"Host": {"orders.shop"}, "Authorization": {"[redacted: --inspect-show-secrets shows it]"}},
				"body":    map[string]any{"size": len(reqBody) + map[bool]int{true: 100}[truncated], "truncated": truncated, "text": reqBody}},
			"cluster": map[string]any{"status": 200, "headers": map[string][]string{"Content-Type": {"application/json"}, "Date": {"Mon, 07 Dec 2026 10:00:00 GMT"}},
				"body": map[string]any{"size": len(clusterBody), "text": clusterBody}},
		}
		b, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	path := filepath.Join(t.TempDir(), "staging.jsonl")
	content := strings.Join([]string{
		line("POST", "/orders/1", `{"n":1}`, false, `{"id":1,"price":10,"at":"10:00"}`),
		"",
		line("GET", "/orders/2", "", false, `{"id":2,"price":10,"at":"10:01"}`),
		line("PUT", "/upload", "abc", true, `{}`),
	}, "\n") + "\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// build is the build under test: order 2 now costs 11.
func build(t *testing.T, auth *[]string) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*auth = append(*auth, r.Header.Get("Authorization"))
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		price := 10
		if r.URL.Path == "/v2/orders/2" {
			price = 11
		}
		id := strings.TrimPrefix(r.URL.Path, "/v2/orders/")
		io.WriteString(w, `{"price":`+string(rune('0'+price/10))+string(rune('0'+price%10))+`,"id":`+id+`,"at":"now"}`)
	}))
	t.Cleanup(s.Close)
	return s
}

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := NewCmdReplay(genericiooptions.IOStreams{Out: &out, ErrOut: &errOut})
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetContext(context.Background())
	err := cmd.Execute()
	return out.String(), err
}

// replay sends every recorded request it can to --against, reports the
// one whose answer differs, and exits 1.
func TestReplayReportsDifferences(t *testing.T) {
	var auth []string
	s := build(t, &auth)
	out, err := run(t, recordFile(t), "--against", s.URL+"/v2", "--ignore", "$.at")
	var ee *local.ExitError
	if !errors.As(err, &ee) || ee.Code != 1 || !local.IsAlreadyReported(err) {
		t.Fatalf("err %v, want exit code 1 with the report printed", err)
	}
	out = strings.ReplaceAll(out, s.URL, "http://TARGET")
	golden.Assert(t, "differ", []byte(out))
	if len(auth) != 2 || auth[0] != "" {
		t.Fatalf("Authorization sent as %q", auth)
	}
}

// With the differing field ignored, nothing differs and the exit code is
// 0; -H gives back the redacted credential; -o json prints the report.
func TestReplayJSONAndHeaders(t *testing.T) {
	var auth []string
	s := build(t, &auth)
	out, err := run(t, recordFile(t), "--against", s.URL+"/v2/", "--ignore", "$.at", "--ignore", "$.price", "-H", "Authorization: Bearer x", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if rep.Kind != "ReplayReport" || rep.Sent != 2 || rep.Differ != 0 || rep.NotSent != 1 || len(rep.Results) != 3 {
		t.Fatalf("report %+v", rep)
	}
	if len(auth) != 2 || auth[0] != "Bearer x" || len(rep.Results[0].Redacted) != 0 {
		t.Fatalf("Authorization sent as %q, redacted %v", auth, rep.Results[0].Redacted)
	}
}

func TestReplayValidate(t *testing.T) {
	path := recordFile(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{path}, "--against URL"},
		{[]string{path, "--against", "localhost:3000"}, "http:// or https://"},
		{[]string{path, "--against", "http://h", "-o", "yaml"}, "-o json"},
		{[]string{path, "--against", "http://h", "--ignore", "items.id"}, "starts at the root"},
		{[]string{path, "--against", "http://h", "-H", "nocolon"}, "'Name: value'"},
		{[]string{filepath.Join(t.TempDir(), "none"), "--against", "http://h"}, "opening the record"},
	} {
		_, err := run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
}
