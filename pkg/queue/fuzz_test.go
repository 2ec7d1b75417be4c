package queue_test

import (
	"bytes"
	"context"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/redistest"
	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

// fuzzEnvs returns the backends a fuzz target runs on: a miniredis with a
// clock of its own, and the shared real redis-server, except while fuzzing
// (fuzz workers are killed at the end, and would leave it running).
func fuzzEnvs(f *testing.F) []*env {
	f.Helper()
	m := miniredis.RunT(f)
	m.SetTime(time.UnixMilli(time.Now().UnixMilli()))
	mc := queue.New(redis.NewClient(&redis.Options{Addr: m.Addr()}))
	f.Cleanup(func() { _ = mc.Close() })
	require.NoError(f, mc.Ping(context.Background()))
	envs := []*env{{c: mc, mini: m}}
	if fz := flag.Lookup("test.fuzz"); fz != nil && fz.Value.String() != "" {
		return envs
	}
	redistest.Available(f)
	sharedOnce.Do(func() { shared, sharedErr = redistest.Start("") })
	require.NoError(f, sharedErr)
	rc, err := queue.Open(context.Background(), queue.Options{URL: shared.URL()})
	require.NoError(f, err)
	f.Cleanup(func() { _ = rc.Close() })
	return append(envs, &env{c: rc})
}

// FuzzDeadItem pushes an item, fails it for good with an error holding
// colons and arbitrary bytes, and reads it back from the dead set; then
// retries it and checks that the payload comes back whole.
func FuzzDeadItem(f *testing.F) {
	f.Add([]byte("item-0"), "exit status 3: disk full")
	f.Add([]byte("a:b:c"), "::::")
	f.Add([]byte(""), "")
	f.Add([]byte("\x00\xff\n:1:2"), "12:34:\x00\xfe\r\n")
	f.Add([]byte("9:"), "3:x")
	f.Add([]byte("héllo wörld"), strings.Repeat("e:", queue.MaxErrorBytes))
	f.Add([]byte(strings.Repeat("p", 10_000)), "1:"+strings.Repeat("z", queue.MaxErrorBytes+7)+":tail")
	envs := fuzzEnvs(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, payload []byte, errText string) {
		for _, e := range envs {
			job := newJobName()
			require.NoError(t, e.c.Create(ctx, job, jobstate.Spec{MaxAttempts: 1}))
			_, err := e.c.Push(ctx, job, [][]byte{payload}, queue.PushOptions{})
			require.NoError(t, err)
			r, err := e.c.Lease(ctx, job, "w", 0)
			require.NoError(t, err)
			require.Len(t, r.Batch.Items, 1)
			res, err := e.c.Nack(ctx, job, r.Batch.Token, queue.Failure{ID: r.Batch.Items[0].ID, Err: errText, Jitter: 0.5})
			require.NoError(t, err)
			require.Equal(t, 1, res.Failed)

			wantErr := errText
			if len(wantErr) > queue.MaxErrorBytes {
				wantErr = "..." + wantErr[len(wantErr)-queue.MaxErrorBytes:]
			}
			dead, err := e.c.Dead(ctx, job, 0)
			require.NoError(t, err)
			require.Equal(t, []queue.DeadItem{{ID: 0, Attempts: 1, LastError: wantErr, Payload: append([]byte{}, payload...), Item: string(payload)}}, nonNilPayload(dead))

			n, err := e.c.RetryDead(ctx, job)
			require.NoError(t, err)
			require.Equal(t, 1, n)
			r, err = e.c.Lease(ctx, job, "w", 0)
			require.NoError(t, err)
			require.Len(t, r.Batch.Items, 1)
			require.True(t, bytes.Equal(payload, r.Batch.Items[0].Payload), "payload %q came back as %q", payload, r.Batch.Items[0].Payload)
			require.Equal(t, 1, r.Batch.Items[0].Attempt)
			require.NoError(t, e.c.Delete(ctx, job))
		}
	})
}

// nonNilPayload makes empty payloads compare equal to []byte("").
func nonNilPayload(ds []queue.DeadItem) []queue.DeadItem {
	for i := range ds {
		if ds[i].Payload == nil {
			ds[i].Payload = []byte{}
		}
	}
	return ds
}

// FuzzPayload sends arbitrary bytes through every place an item lives:
// the pending list, a lease, the retry set (released, then reclaimed after
// its lease expired), and back, and checks they are unchanged.
func FuzzPayload(f *testing.F) {
	f.Add([]byte("item-0"), []byte("second"))
	f.Add([]byte(""), []byte(":"))
	f.Add([]byte("0:1:2"), []byte("\x00"))
	f.Add([]byte("\xff\xfe\x00\r\n"), []byte("1:"))
	f.Add([]byte("{job}"), []byte("'); redis.call('FLUSHALL') --"))
	f.Add(bytes.Repeat([]byte{0}, 5000), []byte(" "))
	envs := fuzzEnvs(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, a, b []byte) {
		for _, e := range envs {
			job := newJobName()
			require.NoError(t, e.c.Create(ctx, job, jobstate.Spec{Lease: jobstate.Duration(jobstate.MinLease), MaxAttempts: 5}))
			_, err := e.c.Push(ctx, job, [][]byte{a, b}, queue.PushOptions{})
			require.NoError(t, err)
			require.NoError(t, e.c.Redis().RPush(ctx, queue.PendingKey(job), a).Err())
			want := [][]byte{a, b, a}
			check := func(bt queue.Batch, attempt int) {
				t.Helper()
				require.Len(t, bt.Items, 3)
				for _, it := range bt.Items {
					require.True(t, bytes.Equal(want[it.ID], it.Payload), "item %d: %q came back as %q", it.ID, want[it.ID], it.Payload)
					require.Equal(t, attempt, it.Attempt)
				}
			}
			r, err := e.c.Lease(ctx, job, "w", 0)
			require.NoError(t, err)
			check(r.Batch, 1)
			_, err = e.c.Settle(ctx, job, []queue.Settlement{{Token: r.Batch.Token, Released: ids(r.Batch)}})
			require.NoError(t, err)
			r, err = e.c.Lease(ctx, job, "w", 0)
			require.NoError(t, err)
			check(r.Batch, 1)
			if e.mini != nil {
				e.mini.SetTime(e.now().Add(jobstate.MinLease))
			} else {
				time.Sleep(jobstate.MinLease + 5*time.Millisecond)
			}
			r, err = e.c.Lease(ctx, job, "w2", 0)
			require.NoError(t, err)
			check(r.Batch, 2)
			res, err := e.c.Ack(ctx, job, r.Batch.Token, ids(r.Batch)...)
			require.NoError(t, err)
			require.Equal(t, 3, res.Acked)
			require.NoError(t, e.c.Delete(ctx, job))
		}
	})
}

// FuzzCreateName: Create accepts a name exactly when it is a DNS label,
// refuses others with jobstate.ErrInvalidSpec without writing anything,
// and never panics.
func FuzzCreateName(f *testing.F) {
	for _, s := range []string{"thumbs", "a", "0", "a-b", "-a", "a-", "A", "a_b", "a.b", "a}b", "{a}", "",
		strings.Repeat("x", 63), strings.Repeat("x", 64), "jöb", "a b", "a\n"} {
		f.Add(s)
	}
	envs := fuzzEnvs(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, name string) {
		e := envs[0]
		err := e.c.Create(ctx, name, jobstate.Spec{})
		if !isDNSLabel(name) {
			require.ErrorIs(t, err, jobstate.ErrInvalidSpec, "%q", name)
			require.False(t, e.mini.Exists("workq:{"+name+"}:spec"), "nothing was written for %q", name)
			return
		}
		require.NoError(t, err, "%q", name)
		names, err := e.c.Names(ctx)
		require.NoError(t, err)
		require.Contains(t, names, name)
		require.NoError(t, e.c.Delete(ctx, name))
	})
}

// isDNSLabel is an independent statement of RFC 1123 labels.
func isDNSLabel(s string) bool {
	if len(s) < 1 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '-' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}
