package sandbox

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The sandbox's /tmp is its own and empty: a socket this machine keeps in
// /tmp (ssh-agent's /tmp/ssh-XXXX/agent.N, tmux's /tmp/tmux-UID/default)
// cannot be reached from inside, while a volume whose mountPath is under
// /tmp, with its files in this machine's /tmp, is there.
func TestSandboxTmpIsItsOwn(t *testing.T) {
	needSandbox(t)
	uid := os.Getuid()
	if u := ordinaryUser(); u != nil {
		uid = int(u.UID)
	}
	agentDir, err := os.MkdirTemp("/tmp", "ssh-test-") //nolint:usetesting // in /tmp itself, as the agent keeps it, whatever TMPDIR says
	if err != nil {
		t.Skipf("a directory in /tmp: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(agentDir) })
	_ = os.Chown(agentDir, uid, uid)
	sock := filepath.Join(agentDir, "agent.1")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Skipf("a socket in %s: %v", agentDir, err)
	}
	defer ln.Close()
	_ = os.Chown(sock, uid, uid)
	go answerEach(ln, "this machine's agent answered\n")
	volume := filepath.Join(readableDir(t), "cache")
	if err := os.Mkdir(volume, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(volume, "seed.txt"), []byte("from the pod's volume\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	const target = "/tmp/app-cache"
	// A name of this test's alone: others use this machine's /tmp too.
	scratch := agentDir + "-scratch"
	out, _, err := runIn(t, (&namedPod{}).dial, Config{
		Mounts: []Mount{{Source: volume, Target: target}},
		Argv: sh(`python3 -c "
import socket,sys
s=socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1]); print(s.recv(100).decode())
except OSError as e:
    print('refused:', e)" ` + sock + `
ls -A /tmp | tr '\n' ' '; echo
stat -c 'mode=%a' /tmp
cat ` + target + `/seed.txt
echo scratch > ` + scratch + ` && echo tmp-writable`)})
	if err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	if !strings.Contains(out, "refused:") || strings.Contains(out, "answered") {
		t.Errorf("this machine's socket %s inside:\n%s", sock, out)
	}
	if strings.Contains(out, filepath.Base(agentDir)) {
		t.Errorf("this machine's /tmp is seen inside:\n%s", out)
	}
	for _, want := range []string{"mode=1777", "from the pod's volume", "tmp-writable"} {
		if !strings.Contains(out, want) {
			t.Errorf("inside, want %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(scratch); err == nil {
		os.Remove(scratch)
		t.Errorf("a file the command wrote in its /tmp is in this machine's")
	}
}

// A volume under /tmp is planned as a new path: the sandbox's /tmp is
// empty whatever this machine's holds.
func TestPlanMountsTmpIsEmpty(t *testing.T) {
	src := t.TempDir()
	taken := "/tmp/kubectl-intercept-plan-test"
	if err := os.MkdirAll(taken, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(taken) })
	kept, skipped := PlanMounts([]Mount{{Source: src, Target: taken}, {Source: src, Target: "/tmp/x.sh"}}, nil)
	if len(kept) != 2 || len(skipped) != 0 {
		t.Errorf("kept %v, skipped %v; want both kept", kept, skipped)
	}
}
