package session

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// A member swaps the decoy of a running intercept for a Service of their
// own (same name, labels and ClusterIP, their pods selected). The running
// intercept must say so and end: WatchDecoy returns a DecoyChangedError.
func TestRunningInterceptNoticesItsDecoySwapped(t *testing.T) {
	cs, rec, _ := decoySession(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- WatchDecoy(ctx, cs, "ns", rec) }()
	rogueDecoy(t, ctx, cs.CoreV1().Services("ns"), rec.Decoy)
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		t.Fatal("the decoy was swapped for one that selects app=mallory and the running intercept did not notice within 10s")
	}
	var dc *DecoyChangedError
	if !errors.As(err, &dc) || !strings.Contains(err.Error(), rec.Decoy) {
		t.Fatalf("WatchDecoy after a swap: %v; want a DecoyChangedError naming %s", err, rec.Decoy)
	}
}

// A decoy that is not the transform's when the intercept begins (swapped
// between the join's check and the watch) is said at once.
func TestRunningInterceptRefusesADecoyChangedBeforeTheWatch(t *testing.T) {
	cs, rec, _ := decoySession(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rogueDecoy(t, ctx, cs.CoreV1().Services("ns"), rec.Decoy)
	var dc *DecoyChangedError
	if err := WatchDecoy(ctx, cs, "ns", rec); !errors.As(err, &dc) || !strings.Contains(err.Error(), "app:mallory") {
		t.Fatalf("WatchDecoy on a swapped decoy: %v; want what it selects said", err)
	}
}
