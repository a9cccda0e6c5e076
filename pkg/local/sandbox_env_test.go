package local

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/podenv"
)

// With --sandbox the command does not get this machine's session
// variables (its agents, its D-Bus, its display), unless --env-allow
// names them; the pod's own variables of those names are the pod's; a
// TMPDIR in this machine's /tmp, which the sandbox replaces, is left out.
func TestSandboxBaseEnv(t *testing.T) {
	base := []string{
		"HOME=/home/dev", "PATH=/usr/bin:/bin",
		"SSH_AUTH_SOCK=/tmp/ssh-XXXXabcd/agent.42", "SSH_AGENT_PID=42",
		"DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus", "XDG_RUNTIME_DIR=/run/user/1000",
		"DISPLAY=:0", "WAYLAND_DISPLAY=wayland-0", "TMUX=/tmp/tmux-1000/default,1234,0", "TMUX_PANE=%1",
		"DOCKER_HOST=unix:///run/user/1000/docker.sock", "INVOCATION_ID=abc", "JOURNAL_STREAM=8:1234",
		"TMPDIR=/tmp/user-1000", "LANG=C.UTF-8",
	}
	kept, hidden := sandboxBaseEnv(base, []string{"DISPLAY"})
	wantHidden := []string{"SSH_AUTH_SOCK", "SSH_AGENT_PID", "DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR", "WAYLAND_DISPLAY",
		"TMUX", "TMUX_PANE", "DOCKER_HOST", "INVOCATION_ID", "JOURNAL_STREAM", "TMPDIR"}
	if !slices.Equal(hidden, wantHidden) {
		t.Errorf("left out %v, want %v", hidden, wantHidden)
	}
	if want := []string{"HOME=/home/dev", "PATH=/usr/bin:/bin", "DISPLAY=:0", "LANG=C.UTF-8"}; !slices.Equal(kept, want) {
		t.Errorf("kept %v, want %v", kept, want)
	}
	// The pod's variables go over what is left, as they are.
	env := CommandEnv(kept, []podenv.Var{{Name: "SSH_AUTH_SOCK", Value: "/var/run/pod-agent.sock"}, {Name: "TMPDIR", Value: "/tmp/app"}}, "")
	for _, want := range []string{"SSH_AUTH_SOCK=/var/run/pod-agent.sock", "TMPDIR=/tmp/app", "DISPLAY=:0"} {
		if !slices.Contains(env, want) {
			t.Errorf("the command's environment lacks %s: %v", want, env)
		}
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "DBUS_SESSION_BUS_ADDRESS=") || strings.HasPrefix(kv, "TMUX=") {
			t.Errorf("the command's environment has this machine's %s", kv)
		}
	}
}

// A TMPDIR that exists inside the sandbox (this machine's files but
// /tmp's are there) is kept.
func TestSandboxBaseEnvTmpdir(t *testing.T) {
	for _, tc := range []struct {
		tmpdir string
		kept   bool
	}{
		{"/tmp", true}, {"/tmp/", true}, {"/var/tmp/dev", true}, {"/home/dev/tmp", true}, {"/tmpfiles", true},
		{"/tmp/user-1000", false}, {"/tmp/a/b", false},
	} {
		kept, hidden := sandboxBaseEnv([]string{"TMPDIR=" + tc.tmpdir}, nil)
		if got := len(kept) == 1; got != tc.kept || got == (len(hidden) == 1) {
			t.Errorf("TMPDIR=%s: kept %v, left out %v", tc.tmpdir, kept, hidden)
		}
	}
}

// The line the start prints names what was left out and how to take it
// in; nothing is printed when nothing was.
func TestHiddenEnvLine(t *testing.T) {
	s := (&SandboxSide{HiddenEnv: []string{"SSH_AUTH_SOCK", "DISPLAY"}}).HiddenEnvLine()
	for _, want := range []string{"SSH_AUTH_SOCK, DISPLAY left out", "--env-allow NAME"} {
		if !strings.Contains(s, want) {
			t.Errorf("%q lacks %q", s, want)
		}
	}
	if s := (&SandboxSide{}).HiddenEnvLine(); s != "" {
		t.Errorf("nothing hidden: %q", s)
	}
}

// A command or a working directory in this machine's /tmp, which the
// sandbox replaces, is refused before anything changes, with what to do.
func TestCheckOutsideTmp(t *testing.T) {
	dir, err := os.MkdirTemp("/tmp", "app-build-") //nolint:usetesting // the test is about /tmp itself
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "app")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkOutsideTmp([]string{bin}); err == nil || !strings.Contains(err.Error(), "build or copy it outside /tmp") {
		t.Errorf("a command in /tmp: %v", err)
	}
	if err := checkOutsideTmp([]string{"sh", "-c", "true"}); err != nil {
		t.Errorf("a command on PATH: %v", err)
	}
	t.Chdir(dir)
	if err := checkOutsideTmp([]string{"./app"}); err == nil || !strings.Contains(err.Error(), "run the intercept from a directory outside /tmp") {
		t.Errorf("a working directory in /tmp: %v", err)
	}
}
