//go:build cluster

package cluster_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/workq/workq/internal/redistest"
	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

// BenchmarkAckReplicas measures what --ack-replicas costs: a queue.Worker
// drains b.N items that take no time, through a redis+sentinel:// URL to a
// primary with one replica in step on loopback or 100ms behind, recording its outcomes
// asynchronously (0) or after WAIT for one replica (1), with leases of up
// to 10 or 100 items. It reports items/s; every settle pays one WAIT.
//
//	go test -tags cluster -run '^$' -bench AckReplicas -benchtime 20000x ./test/cluster/
func BenchmarkAckReplicas(b *testing.B) {
	for _, lag := range []time.Duration{0, replicaLag} {
		b.Run(fmt.Sprintf("replica-lag=%s", lag), func(b *testing.B) {
			var url string
			if lag > 0 {
				url = redistest.StartLaggedSentinel(b, lag).URL()
			} else {
				url = redistest.StartSentinel(b).URL()
			}
			c, err := queue.Connect(queue.Options{URL: url})
			require.NoError(b, err)
			b.Cleanup(func() { _ = c.Close() })
			benchAckReplicas(b, c)
		})
	}
}

func benchAckReplicas(b *testing.B, c *queue.Client) {
	n := 0
	for _, batch := range []int{10, 100} {
		for _, replicas := range []int{0, 1} {
			b.Run(fmt.Sprintf("batch=%d/ack-replicas=%d", batch, replicas), func(b *testing.B) {
				n++
				job := fmt.Sprintf("bench-%d", n)
				ctx := context.Background()
				require.NoError(b, c.Create(ctx, job, jobstate.Spec{BatchSize: batch}))
				items := make([][]byte, b.N)
				for i := range items {
					items[i] = fmt.Appendf(nil, "item-%d", i)
				}
				_, err := c.Push(ctx, job, items, queue.PushOptions{})
				require.NoError(b, err)
				_, err = c.Seal(ctx, job)
				require.NoError(b, err)
				w, err := queue.NewWorker(c, queue.WorkerConfig{Job: job, Concurrency: 4, AckReplicas: replicas,
					Handler: queue.HandlerFunc(func(context.Context, queue.Item) error { return nil }),
					Logger:  slog.New(slog.NewTextHandler(io.Discard, nil))})
				require.NoError(b, err)
				b.ResetTimer()
				start := time.Now()
				require.NoError(b, w.Run(ctx))
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "items/s")
				b.StopTimer()
				s, err := c.Inspector().Status(ctx, job)
				require.NoError(b, err)
				require.Equal(b, int64(b.N), s.Items.Succeeded)
			})
		}
	}
}

// BenchmarkJobsOverCluster measures how Jobs spread over a Redis Cluster:
// six Jobs (their names chosen so that every node serves some), b.N items
// each, drained at once by one queue.Worker per Job (batch 1000,
// concurrency 4), on a Cluster of 1 node and of 3 (AOF off: the
// durability settings of the other tests would time fsync, not workq); and
// for comparison one Job of 6×b.N items drained by six such workers. It
// reports the items/s of all together and each node's Redis CPU per 100k
// items: one Job's keys share one hash tag, so one Job's work runs on one
// node, and many Jobs spread their work over the nodes.
//
//	go test -tags cluster -run '^$' -bench JobsOverCluster -benchtime 200000x ./test/cluster/
func BenchmarkJobsOverCluster(b *testing.B) {
	const workers = 6
	for _, r := range []struct{ nodes, jobs int }{{1, 1}, {3, 1}, {1, 6}, {3, 6}} {
		b.Run(fmt.Sprintf("nodes=%d/jobs=%d", r.nodes, r.jobs), func(b *testing.B) {
			c := redistest.StartCluster(b, r.nodes)
			for _, n := range c.Nodes {
				_, err := n.Do("CONFIG", "SET", "appendonly", "no")
				require.NoError(b, err)
			}
			qc, err := queue.Connect(queue.Options{URL: c.URL()})
			require.NoError(b, err)
			b.Cleanup(func() { _ = qc.Close() })
			ctx := context.Background()
			var names []string
			if r.nodes == 1 || r.jobs < r.nodes {
				// One node serves every slot (and names itself with no
				// host in CLUSTER SLOTS, which Owner cannot match), or
				// fewer Jobs than nodes: any names do.
				for i := range r.jobs {
					names = append(names, fmt.Sprintf("job-%03d", i))
				}
			} else {
				for _, byNode := range jobsOnEveryNode(b, c, r.jobs) {
					names = append(names, byNode...)
				}
			}
			perJob := b.N * workers / r.jobs
			items := make([][]byte, perJob)
			for i := range items {
				items[i] = fmt.Appendf(nil, "item-%d", i)
			}
			var ws []*queue.Worker
			for _, job := range names {
				require.NoError(b, qc.Create(ctx, job, jobstate.Spec{BatchSize: 1000}))
				_, err = qc.Push(ctx, job, items, queue.PushOptions{})
				require.NoError(b, err)
				_, err = qc.Seal(ctx, job)
				require.NoError(b, err)
				ws = append(ws, noopWorkers(b, qc, job, workers/r.jobs, 4)...)
			}
			b.ResetTimer()
			d, cpu := drain(b, c, ws)
			b.StopTimer()
			total := float64(perJob * len(names))
			b.ReportMetric(total/d.Seconds(), "items/s")
			for i, v := range cpu {
				b.ReportMetric(v/total*1e5, fmt.Sprintf("node%d-cpu-s/100k", i))
			}
			for _, job := range names {
				s, err := qc.Inspector().Status(ctx, job)
				require.NoError(b, err)
				require.Equal(b, int64(perJob), s.Items.Succeeded)
			}
		})
	}
}

// noopWorkers makes n in-process Workers of job whose items take no time.
func noopWorkers(b *testing.B, qc *queue.Client, job string, n, concurrency int) []*queue.Worker {
	b.Helper()
	ws := make([]*queue.Worker, n)
	for i := range ws {
		w, err := queue.NewWorker(qc, queue.WorkerConfig{Job: job, Concurrency: concurrency,
			Handler: queue.HandlerFunc(func(context.Context, queue.Item) error { return nil }),
			Logger:  slog.New(slog.NewTextHandler(io.Discard, nil))})
		require.NoError(b, err)
		ws[i] = w
	}
	return ws
}

// drain runs ws until every one ends, without error, and returns how long
// that took and the Redis CPU (s) each node of c used meanwhile.
func drain(b *testing.B, c *redistest.Cluster, ws []*queue.Worker) (time.Duration, []float64) {
	b.Helper()
	cpu := nodesCPU(b, c)
	start := time.Now()
	var g errgroup.Group
	for _, w := range ws {
		g.Go(func() error { return w.Run(context.Background()) })
	}
	require.NoError(b, g.Wait())
	d := time.Since(start)
	for i, c1 := range nodesCPU(b, c) {
		cpu[i] = c1 - cpu[i]
	}
	return d, cpu
}

// nodesCPU returns each node's used_cpu_sys + used_cpu_user (seconds).
func nodesCPU(b *testing.B, c *redistest.Cluster) []float64 {
	b.Helper()
	out := make([]float64, len(c.Nodes))
	for i, n := range c.Nodes {
		v, err := n.Do("INFO", "cpu")
		require.NoError(b, err)
		info, _ := v.(string)
		for _, line := range strings.Split(info, "\r\n") {
			k, val, ok := strings.Cut(line, ":")
			if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
				f, err := strconv.ParseFloat(val, 64)
				require.NoError(b, err)
				out[i] += f
			}
		}
	}
	return out
}
