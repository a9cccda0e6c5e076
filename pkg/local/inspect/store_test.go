package inspect

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// The store keeps the last limit exchanges, lists them newest first, and
// forgets the evicted ones.
func TestStoreKeepsTheLast(t *testing.T) {
	s := NewStore(3)
	for i := 1; i <= 5; i++ {
		s.add(Exchange{Path: fmt.Sprintf("/%d", i)})
	}
	var paths []string
	for _, ex := range s.List() {
		paths = append(paths, ex.Path)
	}
	if fmt.Sprint(paths) != "[/5 /4 /3]" {
		t.Errorf("List = %v, want [/5 /4 /3]", paths)
	}
	if _, ok := s.Get(2); ok {
		t.Error("exchange 2 is still kept after 5 with a limit of 3")
	}
	if ex, ok := s.Get(4); !ok || ex.Path != "/4" {
		t.Errorf("Get(4) = %q, %v", ex.Path, ok)
	}
	if _, ok := s.Get(6); ok {
		t.Error("Get(6) found an exchange that never was")
	}
	s.update(1, func(ex *Exchange) { t.Error("update reached an evicted exchange") })
	if NewStore(0).Limit() != DefaultLimit {
		t.Errorf("NewStore(0) keeps %d, want %d", NewStore(0).Limit(), DefaultLimit)
	}
}

// Since returns what changed after a point, and Next wakes a waiter at the
// next change.
func TestStoreSinceFollowsChanges(t *testing.T) {
	s := NewStore(2)
	s.add(Exchange{Path: "/a"})
	c := s.Since(0)
	if len(c.Exchanges) != 1 || c.Oldest != 1 {
		t.Fatalf("Since(0) = %d exchanges, oldest %d", len(c.Exchanges), c.Oldest)
	}
	select {
	case <-c.Next:
		t.Fatal("Next closed without a change")
	default:
	}
	s.update(1, func(ex *Exchange) { ex.Status = 204 })
	select {
	case <-c.Next:
	case <-time.After(time.Second):
		t.Fatal("Next stayed open after a change")
	}
	c = s.Since(c.Seq)
	if len(c.Exchanges) != 1 || c.Exchanges[0].Status != 204 {
		t.Fatalf("after an update, Since = %+v", c.Exchanges)
	}
	s.add(Exchange{Path: "/b"})
	s.add(Exchange{Path: "/c"})
	c = s.Since(c.Seq)
	if len(c.Exchanges) != 2 || c.Exchanges[0].Path != "/b" || c.Oldest != 2 {
		t.Errorf("after two adds, Since = %+v, oldest %d", c.Exchanges, c.Oldest)
	}
}

// Writers and a live reader at once (run with -race).
func TestStoreConcurrentUse(t *testing.T) {
	s := NewStore(50)
	stop := make(chan struct{})
	var seen int
	var reader sync.WaitGroup
	reader.Go(func() {
		var seq uint64
		for {
			c := s.Since(seq)
			seq = c.Seq
			seen += len(c.Exchanges)
			select {
			case <-c.Next:
			case <-stop:
				return
			}
		}
	})
	var writers sync.WaitGroup
	for w := 0; w < 8; w++ {
		writers.Go(func() {
			for i := 0; i < 200; i++ {
				id := s.add(Exchange{Method: "GET"})
				s.update(id, func(ex *Exchange) { ex.Done = true })
				s.Get(id)
				s.List()
			}
		})
	}
	writers.Wait()
	close(stop)
	reader.Wait()
	if got := len(s.List()); got != 50 {
		t.Errorf("kept %d, want 50", got)
	}
	if seen == 0 {
		t.Error("the reader saw no change")
	}
}

// The Store is bounded in bytes as well as in count: exchanges with large
// headers push the oldest out long before the count is reached.
func TestStoreBoundedInBytes(t *testing.T) {
	s := NewStore(500)
	s.SetByteLimit(1 << 20)
	big := http.Header{"X-Big": {strings.Repeat("b", 60<<10)}}
	for range 100 {
		s.add(Exchange{Method: "GET", Path: "/", RequestHeader: big})
	}
	list := s.List()
	if len(list) == 0 || len(list) > 17 {
		t.Fatalf("kept %d exchanges of 60 KiB headers under a 1 MiB bound", len(list))
	}
	if list[0].ID != 100 {
		t.Fatalf("the newest is %d, want 100", list[0].ID)
	}
}
