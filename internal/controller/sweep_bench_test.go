package controller_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/workq/workq/internal/controller"
	"github.com/workq/workq/internal/redistest"
	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
)

// BenchmarkSweepIdleJobs is one sweep of the controller over 10,000 idle
// Jobs (each with ten pending items, unsealed) on a redis-server of its
// own: the cost serve pays every --interval whatever the Jobs do. It also
// reports the Redis memory of one such Job.
//
//	go test -run '^$' -bench SweepIdleJobs ./internal/controller/
func BenchmarkSweepIdleJobs(b *testing.B) {
	redistest.Available(b)
	srv, err := redistest.Start("")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Stop)
	ctx := context.Background()
	s := store.New(redis.NewClient(&redis.Options{Addr: srv.Addr}))
	b.Cleanup(func() { _ = s.Close() })
	items := make([]string, 10)
	for i := range items {
		items[i] = fmt.Sprintf("item-%d", i)
	}
	mem0 := usedMemory(b, srv)
	for i := range 10_000 {
		name := fmt.Sprintf("idle-%05d", i)
		if _, err := s.Create(ctx, name, jobstate.Spec{}); err != nil {
			b.Fatal(err)
		}
		testkit.Push(b, s, name, items...)
	}
	loop := &controller.Loop{R: &controller.Reconciler{S: s, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	if err := loop.Sweep(ctx); err != nil { // the first sweep reads every Job
		b.Fatal(err)
	}
	perJob := float64(usedMemory(b, srv)-mem0) / 10_000
	b.ResetTimer()
	for range b.N {
		if err := loop.Sweep(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(perJob, "redis-bytes/job")
}

// usedMemory is the server's INFO used_memory.
func usedMemory(b *testing.B, srv *redistest.Server) int64 {
	b.Helper()
	v, err := srv.Do("INFO", "memory")
	if err != nil {
		b.Fatal(err)
	}
	info, _ := v.(string)
	for _, line := range strings.Split(info, "\r\n") {
		if n, ok := strings.CutPrefix(line, "used_memory:"); ok {
			m, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return m
		}
	}
	b.Fatal("INFO memory has no used_memory")
	return 0
}
