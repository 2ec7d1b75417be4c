package queue_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

// BenchmarkWorkerDrain drains b.N no-op items with four in-process Workers
// on a real redis-server: the worker's own cost per item plus Redis's. Run
// it with -cpuprofile to see where the time goes; bench/ reports the table.
func BenchmarkWorkerDrain(b *testing.B) {
	for _, batch := range []int{100, 1000} {
		b.Run(fmt.Sprintf("B=%d", batch), func(b *testing.B) {
			e := realEnvB(b)
			require.NoError(b, e.c.Create(context.Background(), e.job, jobstate.Spec{BatchSize: batch}))
			p, err := e.c.NewPusher(context.Background(), e.job, queue.PushOptions{})
			require.NoError(b, err)
			for i := range b.N {
				require.NoError(b, p.Add([]byte(fmt.Sprintf("item-%012d", i))))
			}
			_, err = p.Close()
			require.NoError(b, err)
			_, err = e.c.Seal(context.Background(), e.job)
			require.NoError(b, err)
			b.ResetTimer()
			var wg sync.WaitGroup
			for i := range 4 {
				w, err := queue.NewWorker(e.c, queue.WorkerConfig{Job: e.job, ID: fmt.Sprint("b", i), Concurrency: 8,
					Handler: queue.HandlerFunc(func(context.Context, queue.Item) error { return nil })})
				require.NoError(b, err)
				wg.Add(1)
				go func() { defer wg.Done(); _ = w.Run(context.Background()) }()
			}
			wg.Wait()
			b.StopTimer()
			st, err := e.c.Inspector().Status(context.Background(), e.job)
			require.NoError(b, err)
			require.EqualValues(b, b.N, st.Items.Succeeded)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
		})
	}
}
