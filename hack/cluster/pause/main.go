// Command pause is the pod sandbox ("pause") process of the local test
// cluster (hack/cluster.sh). It only holds the pod's namespaces open: it
// sleeps until SIGTERM or SIGINT and then exits 0, and it reaps every child
// that is reparented to it, since it is PID 1 of the pod when the pod shares
// one process namespace.
package main

import (
	"errors"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// Without handlers, PID 1 of a PID namespace ignores SIGTERM and SIGINT;
	// Notify installs them. SIGCHLD tells us when there are zombies to reap.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range sigs {
		if sig == syscall.SIGCHLD {
			reap()
			continue
		}
		os.Exit(0)
	}
}

// reap waits for every child that has exited. Several SIGCHLDs can arrive as
// one, so it loops until no exited child is left.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
	}
}
