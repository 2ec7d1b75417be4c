package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/workq/workq/pkg/queue"
)

func TestWrongCredentials(t *testing.T) {
	t.Parallel()

	t.Run("WorkerFailsAtOnceInsteadOfWaiting", func(t *testing.T) {
		t.Parallel()
		m := miniredis.RunT(t)
		m.RequireAuth("right")
		c := queue.New(redis.NewClient(&redis.Options{Addr: m.Addr(), Password: "wrong"}))
		t.Cleanup(func() { _ = c.Close() })
		w, err := queue.NewWorker(c, queue.WorkerConfig{Job: "j", Wait: time.Minute,
			Handler: queue.HandlerFunc(func(context.Context, queue.Item) error { return nil })})
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- w.Run(context.Background()) }()
		select {
		case err := <-done:
			require.ErrorIs(t, err, queue.ErrAuth)
			require.ErrorIs(t, err, queue.ErrUnavailable)
			require.ErrorContains(t, err, "check the password")
			require.NotContains(t, err.Error(), "wrong", "the password is never printed")
		case <-time.After(20 * time.Second):
			t.Fatal("a worker with a wrong password waited for --wait instead of failing")
		}
	})

	t.Run("ANormalOutageStillWaits", func(t *testing.T) {
		t.Parallel()
		m := miniredis.RunT(t)
		addr := m.Addr()
		m.Close()
		c := queue.New(redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1}))
		t.Cleanup(func() { _ = c.Close() })
		w, err := queue.NewWorker(c, queue.WorkerConfig{Job: "j", Wait: 300 * time.Millisecond,
			Handler: queue.HandlerFunc(func(context.Context, queue.Item) error { return nil })})
		require.NoError(t, err)
		start := time.Now()
		err = w.Run(context.Background())
		require.ErrorIs(t, err, queue.ErrUnavailable)
		require.NotErrorIs(t, err, queue.ErrAuth)
		require.ErrorContains(t, err, "waited 300ms")
		require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "an unreachable Redis is waited for")
	})
}
