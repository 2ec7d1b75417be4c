//go:build cluster

package cluster_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
