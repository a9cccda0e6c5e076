package proxy

import (
	"net"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/net/http2"
)

// A stream going on as HTTP/1.1 whose caller stops sending its body holds
// a connection to the app; the relay resets it once the caller has sent
// nothing for the idle timeout (checked every tick), and not before. Time
// is simulated: "not before" is a fact, not a guess that the relay was
// merely slow.
func TestH2StalledBodyResetAfterIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const idle = 5 * time.Second
		fp, apps := memoryRelay(t, false, &Budget{Conns: 10, Legs: 4, Heads: 1, Window: 1 << 20})
		fp.idleTimeout, fp.pace = idle, pace{idle: idle}
		caller, side := net.Pipe()
		served := make(chan struct{})
		go func() { defer close(served); fp.serve(side) }()
		defer func() { caller.Close(); <-served }()
		var reset atomic.Bool
		fr := http2.NewFramer(caller, caller)
		go func() {
			for {
				f, err := fr.ReadFrame()
				if err != nil {
					return
				}
				if r, ok := f.(*http2.RSTStreamFrame); ok && r.StreamID == 1 {
					reset.Store(true)
				}
			}
		}()
		caller.Write([]byte(http2.ClientPreface))
		fr.WriteSettings()
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: postBlock("/stalled", "content-length", "1000000"), EndHeaders: true})
		fr.WriteData(1, false, []byte("the start of a body that stops"))
		synctest.Wait()
		if apps.conns() != 1 {
			t.Fatalf("the stream holds %d connections to the app, want 1", apps.conns())
		}
		// The idle timeout passes on the first tick that finds it over.
		time.Sleep(2*idle - time.Second)
		synctest.Wait()
		if reset.Load() {
			t.Fatal("the stream was reset before its caller had been idle for the idle timeout and a tick")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if !reset.Load() {
			t.Fatal("the stream whose caller stopped sending was not reset a tick after the idle timeout")
		}
	})
}
