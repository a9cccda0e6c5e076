package procid

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as a process that serves its identity: run with
// PROCID_HELPER_DIR set, it serves there, prints its Identity and waits
// for SIGTERM.
func TestMain(m *testing.M) {
	if dir := os.Getenv("PROCID_HELPER_DIR"); dir != "" {
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		s, err := Serve(dir)
		if err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(2)
		}
		_ = json.NewEncoder(os.Stdout).Encode(s.Identity())
		select {
		case <-term:
			os.Exit(0)
		case <-time.After(time.Minute):
			os.Exit(3)
		}
	}
	os.Exit(m.Run())
}

// startServing runs a process that serves its identity in dir.
func startServing(t *testing.T, dir string) (Identity, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PROCID_HELPER_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var id Identity
	if err := json.NewDecoder(bufio.NewReader(out)).Decode(&id); err != nil {
		t.Fatalf("the serving process said nothing: %v", err)
	}
	if id.PID != cmd.Process.Pid {
		t.Fatalf("identity of pid %d from pid %d", id.PID, cmd.Process.Pid)
	}
	return id, cmd
}

// startSleep runs an unrelated process.
func startSleep(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

func running(cmd *exec.Cmd) bool {
	info, err := Of(cmd.Process.Pid)
	return err == nil && info.Start != ""
}

// The process a record was written for is proven and ended by Terminate.
func TestGenuineProcessIsOursAndEnds(t *testing.T) {
	dir := t.TempDir()
	id, cmd := startServing(t, dir)
	if f := Check(dir, id); f.Verdict != Ours {
		t.Fatalf("the genuine process: %v", f)
	}
	if err := Terminate(id); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("it did not leave on SIGTERM: %v", err)
	}
	if f := Check(dir, id); f.Verdict != Gone {
		t.Fatalf("after it ended: %v", f)
	}
}

// A record whose pid now belongs to an unrelated process (the pid was
// reused): it is Other, named, and Terminate's own check refuses it.
func TestReusedPidIsNotOurs(t *testing.T) {
	dir := t.TempDir()
	id, _ := startServing(t, dir)
	sleep := startSleep(t)
	id.PID = sleep.Process.Pid
	f := Check(dir, id)
	if f.Verdict != Other || !strings.Contains(f.String(), "sleep") || !strings.Contains(f.String(), "started at another time") {
		t.Fatalf("a stranger at the pid: %v (verdict %d)", f, f.Verdict)
	}
	if err := Terminate(id); err == nil {
		t.Fatal("Terminate signaled a process that started at another time")
	}
	if !running(sleep) {
		t.Fatal("the unrelated process was ended")
	}
}

// A record with the right pid and start time but another token is not
// proof: something else wrote it, or it is not that process's record.
func TestWrongTokenIsUnproven(t *testing.T) {
	dir := t.TempDir()
	id, cmd := startServing(t, dir)
	forged := id
	forged.Token = strings.Repeat("ab", 32)
	if f := Check(dir, forged); f.Verdict != Unproven || !strings.Contains(f.Why, "identity socket") {
		t.Fatalf("a wrong token: %v (verdict %d)", f, f.Verdict)
	}
	// The right socket, answered by a process that does not hold the
	// record's key: the token's socket name with another secret.
	if err := os.Rename(SocketPath(dir, id), SocketPath(dir, forged)); err != nil {
		t.Fatal(err)
	}
	if f := Check(dir, forged); f.Verdict != Unproven || !strings.Contains(f.Why, "without the record's token") {
		t.Fatalf("a socket without the token: %v (verdict %d)", f, f.Verdict)
	}
	if !running(cmd) {
		t.Fatal("the process ended")
	}
}

// A record of an older version (a pid, nothing to prove it) is never
// taken for ours, even when the pid runs.
func TestRecordWithoutProofIsUnproven(t *testing.T) {
	sleep := startSleep(t)
	f := Check(t.TempDir(), Identity{PID: sleep.Process.Pid})
	if f.Verdict != Unproven || !strings.Contains(f.Why, "no proof") {
		t.Fatalf("%v (verdict %d)", f, f.Verdict)
	}
}

// A stale record: its process ended and nobody has the pid.
func TestDeadPidIsGone(t *testing.T) {
	dir := t.TempDir()
	id, cmd := startServing(t, dir)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if f := Check(dir, id); f.Verdict != Gone {
		t.Fatalf("a dead pid: %v (verdict %d)", f, f.Verdict)
	}
	if !WaitGone(id, time.Second) {
		t.Fatal("WaitGone waits for a dead process")
	}
	Sweep(dir)
	if _, err := os.Stat(SocketPath(dir, id)); !os.IsNotExist(err) {
		t.Fatalf("the dead process's socket is left: %v", err)
	}
}

// This process proves itself, and a socket in use is not swept.
func TestServeInProcess(t *testing.T) {
	dir := t.TempDir()
	s, err := Serve(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	id := s.Identity()
	if id.PID != os.Getpid() || id.Start == "" || id.Exe == "" || len(id.Token) != 64 {
		t.Fatalf("identity %+v", id)
	}
	Sweep(dir)
	if f := Check(dir, id); f.Verdict != Ours {
		t.Fatalf("%v", f)
	}
}
