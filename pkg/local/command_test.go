package local

import (
	"io"
	"strings"
	"testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/podenv"
)

func TestParseForward(t *testing.T) {
	for in, want := range map[string]Forward{
		"5432:postgres.db:5432":  {Local: 5432, Target: "postgres.db:5432"},
		"15432:postgres.db:5432": {Local: 15432, Target: "postgres.db:5432"},
		"redis.cache:6379":       {Local: 6379, Target: "redis.cache:6379"},
		"8080:[fd00::1]:80":      {Local: 8080, Target: "[fd00::1]:80"},
		"10.96.0.5:80":           {Local: 80, Target: "10.96.0.5:80"},
	} {
		got, err := ParseForward(in)
		if err != nil || got != want {
			t.Errorf("%s: %+v, %v; want %+v", in, got, err, want)
		}
	}
}

// The command gets this machine's environment with the pod's over it and
// the proxy's last; a command's exit code is the plugin's.
func TestCommandEnvAndExitCode(t *testing.T) {
	env := CommandEnv([]string{"PATH=/usr/bin", "HOME=/home/dev", "LOG_LEVEL=warn"},
		[]podenv.Var{{Name: "LOG_LEVEL", Value: "debug"}, {Name: "DSN", Value: "a=b"}}, "127.0.0.1:1080")
	got := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = v
	}
	for k, v := range map[string]string{"PATH": "/usr/bin", "LOG_LEVEL": "debug", "DSN": "a=b", "HTTP_PROXY": "http://127.0.0.1:1080",
		"https_proxy": "http://127.0.0.1:1080", "ALL_PROXY": "socks5h://127.0.0.1:1080", "NO_PROXY": "localhost,127.0.0.1,::1"} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	lc, err := StartCommand([]string{"sh", "-c", "exit 3"}, nil, nil, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	<-lc.Done()
	if code := ExitCode(lc.Result()); code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
	if err := LookCommand([]string{"no-such-command-here"}); ExitCode(err) != 127 {
		t.Errorf("a missing command: %v (code %d), want 127", err, ExitCode(err))
	}
}
