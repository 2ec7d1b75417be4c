package queue_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/workq/workq/internal/redistest"
	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

// Benchmarks of the Lua scripts and hot paths against a real redis-server
// started for the benchmark (skipped when it is not installed). Besides
// ns/op they report items/s and redis-ns/item, Redis's own CPU time per
// item (INFO used_cpu_user+used_cpu_sys), which is what limits a busy
// Job and is far less noisy than wall time on a shared machine. Compare
// runs with benchstat:
//
//	go test -run '^$' -bench . -count 6 ./pkg/queue > new.txt
//	benchstat old.txt new.txt

// benchRedis starts a redis-server for one benchmark and its sub-benchmarks.
func benchRedis(b *testing.B) *queue.Client {
	b.Helper()
	s := redistest.ForTest(b)
	c, err := queue.Open(context.Background(), queue.Options{URL: s.URL()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	return c
}

var benchJobs atomic.Int64

// benchJob creates a Job of its own with the given batch size.
func benchJob(b *testing.B, c *queue.Client, batch int) string {
	b.Helper()
	job := fmt.Sprintf("bench-%d", benchJobs.Add(1))
	if err := c.Create(context.Background(), job, jobstate.Spec{BatchSize: batch}); err != nil {
		b.Fatal(err)
	}
	return job
}

// benchItems returns n 16-byte items starting at from.
func benchItems(from, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		s := strconv.Itoa(from + i)
		out[i] = []byte("item-00000000000"[:16-len(s)] + s)
	}
	return out
}

// redisCPU returns the Redis server's CPU seconds so far.
func redisCPU(b *testing.B, c *queue.Client) float64 {
	b.Helper()
	s, err := c.Redis().Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var sum float64
	for _, l := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatal(err)
			}
			sum += f
		}
	}
	return sum
}

// reportItems reports items/s over the timed part and Redis CPU per item.
func reportItems(b *testing.B, items int, redisSeconds float64) {
	b.Helper()
	if items == 0 {
		return
	}
	b.ReportMetric(float64(items)/b.Elapsed().Seconds(), "items/s")
	b.ReportMetric(redisSeconds/float64(items)*1e9, "redis-ns/item")
}

// BenchmarkLeaseSettle is the drain loop's Redis work: one Lease of n items
// and one Settle acking them all, per op. Items are refilled with the timer
// stopped (their Redis CPU is not counted either).
func BenchmarkLeaseSettle(b *testing.B) {
	c := benchRedis(b)
	ctx := context.Background()
	for _, n := range []int{1, 10, 100, 1000} {
		b.Run("batch="+strconv.Itoa(n), func(b *testing.B) {
			job := benchJob(b, c, n)
			refill := max(100*n, 10_000)
			left, pushed, items := 0, 0, 0
			var cpu float64
			cpu0 := redisCPU(b, c)
			for b.Loop() {
				if left < n {
					b.StopTimer()
					cpu += redisCPU(b, c) - cpu0
					if _, err := c.Push(ctx, job, benchItems(pushed, refill), queue.PushOptions{}); err != nil {
						b.Fatal(err)
					}
					pushed += refill
					left += refill
					cpu0 = redisCPU(b, c)
					b.StartTimer()
				}
				r, err := c.Lease(ctx, job, "bench", n)
				if err != nil {
					b.Fatal(err)
				}
				if len(r.Batch.Items) != n {
					b.Fatalf("leased %d items, want %d", len(r.Batch.Items), n)
				}
				acked := make([]int64, len(r.Batch.Items))
				for i, it := range r.Batch.Items {
					acked[i] = it.ID
				}
				res, err := c.Ack(ctx, job, r.Batch.Token, acked...)
				if err != nil {
					b.Fatal(err)
				}
				if res.Acked != n {
					b.Fatalf("acked %d items, want %d", res.Acked, n)
				}
				left -= n
				items += n
			}
			cpu += redisCPU(b, c) - cpu0
			reportItems(b, items, cpu)
		})
	}
}

// BenchmarkPushChunk pushes one chunk of 1000 16-byte items per op through
// Client.Push (one script call). The pending list is emptied with the
// timer stopped every million items.
func BenchmarkPushChunk(b *testing.B) {
	c := benchRedis(b)
	ctx := context.Background()
	job := benchJob(b, c, 100)
	chunk := benchItems(0, 1000)
	items := 0
	var cpu float64
	cpu0 := redisCPU(b, c)
	for b.Loop() {
		n, err := c.Push(ctx, job, chunk, queue.PushOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if n != int64(len(chunk)) {
			b.Fatalf("pushed %d items, want %d", n, len(chunk))
		}
		items += len(chunk)
		if items%1_000_000 == 0 {
			b.StopTimer()
			cpu += redisCPU(b, c) - cpu0
			if err := c.Redis().Del(ctx, queue.PendingKey(job)).Err(); err != nil {
				b.Fatal(err)
			}
			cpu0 = redisCPU(b, c)
			b.StartTimer()
		}
	}
	cpu += redisCPU(b, c) - cpu0
	reportItems(b, items, cpu)
}

// BenchmarkHeartbeat refreshes a worker holding 10 leases, per op.
func BenchmarkHeartbeat(b *testing.B) {
	c := benchRedis(b)
	ctx := context.Background()
	job := benchJob(b, c, 1)
	if _, err := c.Push(ctx, job, benchItems(0, 10), queue.PushOptions{}); err != nil {
		b.Fatal(err)
	}
	tokens := make([]string, 10)
	for i := range tokens {
		r, err := c.Lease(ctx, job, "bench", 1)
		if err != nil {
			b.Fatal(err)
		}
		tokens[i] = r.Batch.Token
	}
	cpu0 := redisCPU(b, c)
	ops := 0
	for b.Loop() {
		h, err := c.Heartbeat(ctx, job, "bench", tokens)
		if err != nil {
			b.Fatal(err)
		}
		if len(h.Lost) != 0 {
			b.Fatalf("heartbeat lost %d leases", len(h.Lost))
		}
		ops++
	}
	b.ReportMetric((redisCPU(b, c)-cpu0)/float64(ops)*1e9, "redis-ns/op")
}

// BenchmarkStatus reads the status snapshot of a Job with 100k pending
// items, 10 leases and 1000 succeeded items.
func BenchmarkStatus(b *testing.B) {
	c := benchRedis(b)
	ctx := context.Background()
	job := benchJob(b, c, 100)
	if _, err := c.Push(ctx, job, benchItems(0, 101_000), queue.PushOptions{}); err != nil {
		b.Fatal(err)
	}
	for range 10 {
		r, err := c.Lease(ctx, job, "bench", 100)
		if err != nil {
			b.Fatal(err)
		}
		acked := make([]int64, len(r.Batch.Items))
		for i, it := range r.Batch.Items {
			acked[i] = it.ID
		}
		if _, err := c.Ack(ctx, job, r.Batch.Token, acked...); err != nil {
			b.Fatal(err)
		}
	}
	for range 10 {
		if _, err := c.Lease(ctx, job, "bench", 1); err != nil {
			b.Fatal(err)
		}
	}
	cpu0 := redisCPU(b, c)
	ops := 0
	for b.Loop() {
		st, err := c.Status(ctx, job)
		if err != nil {
			b.Fatal(err)
		}
		if st.Items.Succeeded != 1000 || st.Leases != 10 {
			b.Fatalf("status: %d succeeded, %d leases; want 1000 and 10", st.Items.Succeeded, st.Leases)
		}
		ops++
	}
	b.ReportMetric((redisCPU(b, c)-cpu0)/float64(ops)*1e9, "redis-ns/op")
}
