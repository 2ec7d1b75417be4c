package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/workq/workq/pkg/queue"
)

// volumeResult is the scale row: many items pushed with `coordinator push
// -f` and drained by worker processes at B=1000.
type volumeResult struct {
	Items        int     `json:"items"`
	Workers      int     `json:"workers"`
	Succeeded    int64   `json:"succeeded"`
	PushSeconds  float64 `json:"pushSeconds"`
	DrainSeconds float64 `json:"drainSeconds"`
	// WallSeconds runs from the start of the push to the last worker's exit
	// (create, push, seal, drain).
	WallSeconds float64 `json:"wallSeconds"`
	// RedisPeakMiB is INFO used_memory_peak of a redis-server started for
	// this row alone (exact), or, on a Redis given with --redis, the
	// largest used_memory sampled every 50 ms (PeakExact false).
	RedisPeakMiB      float64 `json:"redisPeakMiB"`
	RedisBaseMiB      float64 `json:"redisBaseMiB"` // used_memory before the push
	PeakExact         bool    `json:"redisPeakExact"`
	CoordinatorRSSMiB float64 `json:"coordinatorPeakRSSMiB"`
	WorkerRSSMiB      float64 `json:"workerPeakRSSMiB"` // the largest of the worker processes
}

func (b *bench) volume(ctx context.Context) {
	n := b.cfg.volumeItems
	procs := b.cfg.binaryProcesses
	r := row{Group: groupVolume, Name: fmt.Sprintf("%s items, %d worker processes", human(float64(n)), procs), Batch: 1000, Workers: procs, Items: n}
	v, s, err := b.volumeRun(ctx, n, procs)
	if err != nil {
		b.fail("scale row", err)
		r.NotRun = err.Error()
		b.rep.Rows = append(b.rep.Rows, r)
		return
	}
	r.fill([]sample{s})
	b.rep.Rows = append(b.rep.Rows, r)
	b.rep.Volume = &v
}

func (b *bench) volumeRun(ctx context.Context, n, procs int) (volumeResult, sample, error) {
	v := volumeResult{Items: n, Workers: procs}
	coord, err := b.build(ctx, "coordinator")
	if err != nil {
		return v, sample{}, err
	}
	worker, err := b.build(ctx, "worker")
	if err != nil {
		return v, sample{}, err
	}
	// A redis-server of its own, so that used_memory_peak is this row's.
	env := b.env
	if b.env.server != nil {
		if env, err = startRedis(ctx, "", false); err != nil {
			return v, sample{}, err
		}
		defer env.close()
		v.PeakExact = true
	} else if err := env.reset(ctx); err != nil {
		return v, sample{}, err
	}
	file, err := writeLines(b.tmp, n)
	if err != nil {
		return v, sample{}, err
	}
	defer os.Remove(file)
	base, err := env.usedMemory(ctx)
	if err != nil {
		return v, sample{}, err
	}
	v.RedisBaseMiB = float64(base) / (1 << 20)
	peak := sampleMemory(ctx, env)

	b.progress("scale row: pushing %s items with coordinator push -f", human(float64(n)))
	job := "bench-volume"
	start := time.Now()
	push, err := runCoordinatorPush(ctx, env, coord, job, file, n)
	if err != nil {
		peak.stop()
		return v, sample{}, err
	}
	mem1, err := env.usedMemory(ctx)
	if err != nil {
		peak.stop()
		return v, sample{}, err
	}
	if err := runQuiet(ctx, coord, "--redis", env.url, "seal", job); err != nil {
		peak.stop()
		return v, sample{}, fmt.Errorf("coordinator seal: %w", err)
	}
	b.progress("scale row: pushed in %.1f s; draining with %d worker processes", push.seconds, procs)
	m, err := env.meter(ctx)
	if err != nil {
		peak.stop()
		return v, sample{}, err
	}
	d, rss, ccpu, err := binaryDrain(ctx, worker, env.url, job, procs, childTimeout)
	v.WallSeconds = time.Since(start).Seconds()
	sampled := peak.stop()
	if err != nil {
		return v, sample{}, err
	}
	_, dcpu, err := m.stop(ctx)
	if err != nil {
		return v, sample{}, err
	}
	c, err := queue.Open(ctx, queue.Options{URL: env.url})
	if err != nil {
		return v, sample{}, err
	}
	defer c.Close()
	st, err := c.Inspector().Status(ctx, job)
	if err != nil {
		return v, sample{}, err
	}
	v.Succeeded = st.Items.Succeeded
	if v.Succeeded != int64(n) {
		return v, sample{}, fmt.Errorf("scale row: %d of %d items succeeded", v.Succeeded, n)
	}
	v.PushSeconds, v.DrainSeconds = push.seconds, d.Seconds()
	v.CoordinatorRSSMiB, v.WorkerRSSMiB = float64(push.maxRSSBytes)/(1<<20), float64(rss)/(1<<20)
	if v.PeakExact {
		m, err := env.info(ctx, "memory")
		if err != nil {
			return v, sample{}, err
		}
		p, err := strconv.ParseInt(m["used_memory_peak"], 10, 64)
		if err != nil {
			return v, sample{}, fmt.Errorf("info memory: used_memory_peak %q: %w", m["used_memory_peak"], err)
		}
		v.RedisPeakMiB = float64(p) / (1 << 20)
	} else {
		v.RedisPeakMiB = float64(sampled) / (1 << 20)
	}
	b.progress("scale row: drained in %.1f s (%s items/s); Redis peak %.0f MiB; peak RSS coordinator %.1f MiB, workers %.1f MiB",
		v.DrainSeconds, human(float64(n)/v.DrainSeconds), v.RedisPeakMiB, v.CoordinatorRSSMiB, v.WorkerRSSMiB)
	s := sample{pushRate: float64(n) / push.seconds, drainRate: float64(n) / d.Seconds(), bytesPerItem: float64(mem1-base)/float64(n) - payloadBytes,
		rssBytes: float64(rss), pushCPU: push.redisCPU / float64(n) * 1e5, drainCPU: dcpu / float64(n) * 1e5, clientCPU: ccpu / float64(n) * 1e5}
	return v, s, nil
}

// memSampler polls INFO used_memory every 50 ms and keeps the largest.
type memSampler struct {
	max  atomic.Int64
	done chan struct{}
	quit chan struct{}
}

func sampleMemory(ctx context.Context, e *redisEnv) *memSampler {
	s := &memSampler{done: make(chan struct{}), quit: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if m, err := e.usedMemory(ctx); err == nil && m > s.max.Load() {
				s.max.Store(m)
			}
			select {
			case <-s.quit:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *memSampler) stop() int64 {
	close(s.quit)
	<-s.done
	return s.max.Load()
}

// runQuiet runs a command; its error carries the last line of stderr.
func runQuiet(ctx context.Context, name string, args ...string) error {
	_, _, err := runTimed(ctx, append([]string{name}, args...), "", 5*time.Minute)
	return err
}

func (rep *report) writeVolume(w io.Writer) {
	v := rep.Volume
	if v == nil {
		return
	}
	peak := "used_memory_peak of a redis-server started for this row"
	if !v.PeakExact {
		peak = "largest used_memory sampled every 50 ms"
	}
	fmt.Fprintf(w, "\nscale row: %s items, wall %.1f s (push %.1f s, drain %.1f s with %d worker processes); Redis peak %.0f MiB (%s; %.1f MiB empty); peak RSS: coordinator push %.1f MiB, workers %.1f MiB (the largest)\n",
		human(float64(v.Items)), v.WallSeconds, v.PushSeconds, v.DrainSeconds, v.Workers, v.RedisPeakMiB, peak, v.RedisBaseMiB, v.CoordinatorRSSMiB, v.WorkerRSSMiB)
}
