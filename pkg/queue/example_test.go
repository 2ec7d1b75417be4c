package queue_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/alicebob/miniredis/v2"

	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

// A Go program creates a work-queue Job, loads it, seals it, and runs a
// Worker whose handler processes each item. Run returns nil once the Job is
// drained: the worker would exit 0. Here Redis is an in-memory miniredis;
// use queue.Open with a redis:// URL for a real one.
func Example() {
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

	if err := c.Create(ctx, "thumbs", jobstate.Spec{BatchSize: 2}); err != nil {
		panic(err)
	}
	n, err := c.Push(ctx, "thumbs", [][]byte{[]byte("cat.jpg"), []byte("dog.jpg"), []byte("owl.jpg")}, queue.PushOptions{})
	if err != nil {
		panic(err)
	}
	fmt.Println("pushed", n)
	if _, err := c.Seal(ctx, "thumbs"); err != nil {
		panic(err)
	}

	w, err := queue.NewWorker(c, queue.WorkerConfig{
		Job: "thumbs",
		Handler: queue.HandlerFunc(func(ctx context.Context, it queue.Item) error {
			fmt.Printf("item %d (attempt %d): %s -> %s\n", it.ID, it.Attempt, it.Payload,
				strings.TrimSuffix(string(it.Payload), ".jpg")+"-small.jpg")
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

	st, err := c.Inspector().Status(ctx, "thumbs")
	if err != nil {
		panic(err)
	}
	fmt.Printf("succeeded %d of %d, %s\n", st.Items.Succeeded, st.Items.Total, st.Phase)
	// Output:
	// pushed 3
	// item 0 (attempt 1): cat.jpg -> cat-small.jpg
	// item 1 (attempt 1): dog.jpg -> dog-small.jpg
	// item 2 (attempt 1): owl.jpg -> owl-small.jpg
	// succeeded 3 of 3, Complete
}

// An Indexed Job: items are the indexes 0..K-1, each run until it succeeds
// once; a handler reads its index, and its Job from the context.
func Example_indexed() {
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
	if err := c.Create(ctx, "shards", jobstate.Spec{Completions: jobstate.Ptr(3)}); err != nil {
		panic(err)
	}
	w, err := queue.NewWorker(c, queue.WorkerConfig{
		Job: "shards",
		Handler: queue.HandlerFunc(func(ctx context.Context, it queue.Item) error {
			job, _ := queue.JobFromContext(ctx)
			fmt.Printf("%s: shard %d of %d\n", job.Name, it.Index, *job.Spec.Completions)
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
	st, err := c.Inspector().Status(ctx, "shards")
	if err != nil {
		panic(err)
	}
	fmt.Println(st.Phase, "indexes", st.CompletedIndexes)
	// Output:
	// shards: shard 0 of 3
	// shards: shard 1 of 3
	// shards: shard 2 of 3
	// Complete indexes 0-2
}
