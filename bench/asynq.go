package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

const asynqTaskType = "bench:noop"

// asynqOpt turns a redis:// URL into asynq's connection options.
func asynqOpt(url string, pool int) (asynq.RedisClientOpt, error) {
	o, err := redis.ParseURL(url)
	if err != nil {
		return asynq.RedisClientOpt{}, err
	}
	return asynq.RedisClientOpt{Addr: o.Addr, Username: o.Username, Password: o.Password, DB: o.DB, PoolSize: pool}, nil
}

// asynqEnqueuers is how many goroutines call Client.Enqueue at once (asynq
// has no batch enqueue: one Lua call per task).
const asynqEnqueuers = 32

// pushAsynq enqueues items no-op tasks with 16-byte payloads into the
// default queue, measuring speed, Redis CPU and Redis memory.
func pushAsynq(ctx context.Context, e *redisEnv, items int) (pushed, error) {
	opt, err := asynqOpt(e.url, asynqEnqueuers+2)
	if err != nil {
		return pushed{}, err
	}
	client := asynq.NewClient(opt)
	defer client.Close()
	if err := client.Ping(); err != nil {
		return pushed{}, err
	}
	mem0, err := e.dataMemory(ctx)
	if err != nil {
		return pushed{}, err
	}
	m, err := e.meter(ctx)
	if err != nil {
		return pushed{}, err
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, asynqEnqueuers)
	for range asynqEnqueuers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= items {
					return
				}
				t := asynq.NewTask(asynqTaskType, []byte(payload(i)))
				if _, err := client.EnqueueContext(ctx, t); err != nil {
					errs <- fmt.Errorf("asynq enqueue: %w", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return pushed{}, err
	}
	d, cpu, err := m.stop(ctx)
	if err != nil {
		return pushed{}, err
	}
	mem1, err := e.dataMemory(ctx)
	if err != nil {
		return pushed{}, err
	}
	return pushed{seconds: d.Seconds(), redisCPU: cpu, bytesPerItem: float64(mem1-mem0)/float64(items) - payloadBytes}, nil
}

// asynqDrain runs in a child: an asynq Server at req.Concurrency processes
// the queued tasks with a no-op handler; the drain ends when every task was
// handled and the queue holds nothing (the last acks have landed).
func asynqDrain(ctx context.Context, req childReq) (time.Duration, int64, error) {
	opt, err := asynqOpt(req.URL, req.Concurrency+10)
	if err != nil {
		return 0, 0, err
	}
	var handled atomic.Int64
	all := make(chan struct{})
	mux := asynq.NewServeMux()
	mux.HandleFunc(asynqTaskType, func(context.Context, *asynq.Task) error {
		if handled.Add(1) == int64(req.Items) {
			close(all)
		}
		return nil
	})
	srv := asynq.NewServer(opt, asynq.Config{
		Concurrency: req.Concurrency,
		Queues:      map[string]int{"default": 1},
		LogLevel:    asynq.ErrorLevel,
	})
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	start := time.Now()
	if err := srv.Start(mux); err != nil {
		return 0, 0, fmt.Errorf("asynq server: %w", err)
	}
	defer srv.Shutdown()
	select {
	case <-all:
	case <-ctx.Done():
		return time.Since(start), handled.Load(), ctx.Err()
	}
	for {
		q, err := insp.GetQueueInfo("default")
		if err != nil {
			return time.Since(start), handled.Load(), fmt.Errorf("asynq queue info: %w", err)
		}
		if q.Size == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start), handled.Load(), nil
}
