package queue_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/alicebob/miniredis/v2"

	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

// sink is a store of results that refuses a write older than one it has:
// it keeps, per item, the largest Item.Fence it has seen. A worker whose
// lease was taken over (it froze, or lost its network) may still finish
// the item and write, late; its fence is smaller than the one the item
// was leased with again, so its write is refused. With it, exactly-once
// accounting becomes exactly-once effects.
type sink struct {
	mu    sync.Mutex
	fence map[int64]int64
	value map[int64]string
}

var errStale = errors.New("stale write refused")

func (s *sink) write(it queue.Item, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if it.Fence < s.fence[it.ID] {
		return errStale
	}
	s.fence[it.ID], s.value[it.ID] = it.Fence, value
	return nil
}

// A handler that writes through a fencing sink. Item 0 fails its first
// run after writing; its second run has a larger fence, and the first
// run's late write (replayed here) is refused.
func Example_fencedSink() {
	srv, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	ctx := context.Background()
	c, err := queue.Open(ctx, queue.Options{URL: "redis://" + srv.Addr()})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	if err := c.Create(ctx, "report", jobstate.Spec{RetryBackoff: jobstate.Duration(1e6), RetryBackoffMax: jobstate.Duration(1e6)}); err != nil {
		panic(err)
	}
	if _, err := c.Push(ctx, "report", [][]byte{[]byte("a"), []byte("b")}, queue.PushOptions{}); err != nil {
		panic(err)
	}
	if _, err := c.Seal(ctx, "report"); err != nil {
		panic(err)
	}
	s := &sink{fence: map[int64]int64{}, value: map[int64]string{}}
	var first queue.Item
	w, err := queue.NewWorker(c, queue.WorkerConfig{
		Job: "report",
		Handler: queue.HandlerFunc(func(_ context.Context, it queue.Item) error {
			if err := s.write(it, fmt.Sprintf("%s by attempt %d", it.Payload, it.Attempt)); err != nil {
				return err
			}
			if it.ID == 0 && it.Attempt == 1 {
				first = it
				return errors.New("crashed after writing")
			}
			return nil
		}),
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	if err := w.Run(ctx); err != nil {
		panic(err)
	}
	// The first run of item 0 writes again, late.
	fmt.Println("late write:", s.write(first, "a by the stale run"))
	fmt.Println(s.value[0])
	fmt.Println(s.value[1])
	// Output:
	// late write: stale write refused
	// a by attempt 2
	// b by attempt 1
}
