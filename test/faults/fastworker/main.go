// Command fastworker is the fault suite's worker of fast items: a
// queue.Worker in a process of its own, whose handler records each item as
// a line "item worker fence" in $OUT/out.<id>.<pid> with one write, before
// the item is acked, so that a kill -9 loses no line of an item that ran.
// Its items take microseconds, so it leases several batches a call, which
// the worker binary's command items never do.
//
//	WORKQ_REDIS_URL=URL OUT=DIR fastworker JOB ID
//
// It exits 0 when the Job is over for it, 1 on any other end.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/workq/workq/pkg/queue"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fastworker:", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) != 3 {
		return fmt.Errorf("usage: fastworker JOB ID")
	}
	job, id := os.Args[1], os.Args[2]
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log, err := os.OpenFile(filepath.Join(os.Getenv("OUT"), "out."+id+"."+strconv.Itoa(os.Getpid())), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	c, err := queue.Open(ctx, queue.Options{URL: os.Getenv("WORKQ_REDIS_URL")})
	if err != nil {
		return err
	}
	defer c.Close()
	w, err := queue.NewWorker(c, queue.WorkerConfig{Job: job, ID: id, Concurrency: 4,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Handler: queue.HandlerFunc(func(_ context.Context, it queue.Item) error {
			_, err := log.Write(fmt.Appendf(nil, "%s %s %d\n", it.Payload, id, it.Fence))
			return err
		})})
	if err != nil {
		return err
	}
	return w.Run(ctx)
}
