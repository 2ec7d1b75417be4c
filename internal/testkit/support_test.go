package testkit

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/store"
)

func TestBuffer(t *testing.T) {
	t.Parallel()

	t.Run("WritersAndReadersAtOnce", func(t *testing.T) {
		t.Parallel()
		var b Buffer
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				for range 100 {
					_, _ = fmt.Fprintf(&b, "%d\n", i)
				}
			})
			wg.Go(func() {
				for range 100 {
					_ = b.String()
					_ = b.Tail(3)
				}
			})
		}
		wg.Wait()
		require.Len(t, b.String(), 800)
	})

	t.Run("TailIsTheEnd", func(t *testing.T) {
		t.Parallel()
		var b Buffer
		_, _ = b.Write([]byte("abcdef"))
		require.Equal(t, "...def", b.Tail(3))
		require.Equal(t, "abcdef", b.Tail(6))
	})
}

func TestSnapshot(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T) (*miniredis.Miniredis, *redis.Client) {
		m := miniredis.RunT(t)
		rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
		t.Cleanup(func() { _ = rdb.Close() })
		ctx := t.Context()
		require.NoError(t, rdb.Set(ctx, "workq:{a}:spec", `{"x":1}`, 0).Err())
		require.NoError(t, rdb.RPush(ctx, "workq:{a}:pending", "p1", "p2").Err())
		require.NoError(t, rdb.HSet(ctx, "workq:{a}:status", "f1", "1", "f2", "2").Err())
		require.NoError(t, rdb.SAdd(ctx, "workq:{a}:workers", "w2", "w1").Err())
		require.NoError(t, rdb.ZAdd(ctx, "workq:{a}:leases", redis.Z{Score: 2, Member: "l2"}, redis.Z{Score: 1, Member: "l1"}).Err())
		require.NoError(t, rdb.HSet(ctx, store.RegistryKey, "a", "uid-a").Err())
		require.NoError(t, rdb.Set(ctx, "workq:{b}:spec", "other", 0).Err())
		require.NoError(t, rdb.Set(ctx, "unrelated", "x", 0).Err())
		return m, rdb
	}

	t.Run("HoldsEveryTypeCanonically", func(t *testing.T) {
		t.Parallel()
		_, rdb := setup(t)
		require.Equal(t, JobKeys{Listed: true, Keys: map[string]Key{
			"workq:{a}:spec":    {Value: `string:"{\"x\":1}"`},
			"workq:{a}:pending": {Value: `list:"p1","p2"`},
			"workq:{a}:status":  {Value: `hash:"f1"="1","f2"="2"`},
			"workq:{a}:workers": {Value: `set:"w1","w2"`},
			"workq:{a}:leases":  {Value: `zset:"l1"=1,"l2"=2`},
		}}, SnapshotJob(t, rdb, "a"))
		all := Snapshot(t, rdb, "workq:*")
		require.Len(t, all, 7)
		require.Equal(t, Key{Value: `hash:"a"="uid-a"`}, all[store.RegistryKey])
		require.Equal(t, JobKeys{Keys: map[string]Key{}}, SnapshotJob(t, rdb, "none"))
	})

	t.Run("AnyChangeShows", func(t *testing.T) {
		t.Parallel()
		for _, c := range []struct {
			name   string
			change func(*redis.Client) error
		}{
			{"StringValue", func(r *redis.Client) error { return r.Set(t.Context(), "workq:{a}:spec", `{"x":2}`, 0).Err() }},
			{"ListOrder", func(r *redis.Client) error {
				return r.LMove(t.Context(), "workq:{a}:pending", "workq:{a}:pending", "LEFT", "RIGHT").Err()
			}},
			{"HashField", func(r *redis.Client) error { return r.HIncrBy(t.Context(), "workq:{a}:status", "f1", 1).Err() }},
			{"SetMember", func(r *redis.Client) error { return r.SRem(t.Context(), "workq:{a}:workers", "w1").Err() }},
			{"ZsetScore", func(r *redis.Client) error { return r.ZIncrBy(t.Context(), "workq:{a}:leases", 5, "l1").Err() }},
			{"TTL", func(r *redis.Client) error { return r.Expire(t.Context(), "workq:{a}:spec", time.Hour).Err() }},
			{"KeyDeleted", func(r *redis.Client) error { return r.Del(t.Context(), "workq:{a}:workers").Err() }},
			{"KeyAdded", func(r *redis.Client) error { return r.Set(t.Context(), "workq:{a}:new", "1", 0).Err() }},
			{"Unlisted", func(r *redis.Client) error { return r.HDel(t.Context(), store.RegistryKey, "a").Err() }},
		} {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				_, rdb := setup(t)
				before := SnapshotJob(t, rdb, "a")
				require.Equal(t, before, SnapshotJob(t, rdb, "a"), "reading changes nothing")
				require.NoError(t, c.change(rdb))
				require.NotEqual(t, before, SnapshotJob(t, rdb, "a"))
			})
		}
	})

	t.Run("ExpiresIsWhetherNotHowLong", func(t *testing.T) {
		t.Parallel()
		m, rdb := setup(t)
		require.NoError(t, rdb.Expire(t.Context(), "workq:{a}:spec", time.Hour).Err())
		before := Snapshot(t, rdb, "workq:{a}:*")
		require.True(t, before["workq:{a}:spec"].Expires)
		require.False(t, before["workq:{a}:pending"].Expires)
		m.FastForward(time.Minute)
		require.Equal(t, before, Snapshot(t, rdb, "workq:{a}:*"))
	})

	t.Run("RedisGoneFailsTheTest", func(t *testing.T) {
		t.Parallel()
		m, rdb := setup(t)
		m.Close()
		msg := failureOf(t, func(tb testing.TB) { Snapshot(tb, rdb, "workq:*") })
		require.Contains(t, msg, "snapshot: scan workq:*")
	})
}

func TestExecutions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	write("out.1", "a\nb\na\n")
	write("out.2", "b\nc\nkilled-mid-wri") // the last run was cut short
	write("other", "a\n")
	require.NoError(t, os.Mkdir(filepath.Join(dir, "out.dir"), 0o755))

	require.Equal(t, map[string]int{"a": 2, "b": 2, "c": 1}, Executions(t, dir, "out.", nil))
	require.Equal(t, map[string]int{"a": 3, "b": 2, "c": 1}, Executions(t, dir, "", nil))
	onlyB := Executions(t, dir, "out.", func(file, line string) (string, bool) { return file, line == "b" })
	require.Equal(t, map[string]int{"out.1": 1, "out.2": 1}, onlyB, "item sees the file and chooses the key")
	msg := failureOf(t, func(tb testing.TB) { Executions(tb, filepath.Join(dir, "missing"), "", nil) })
	require.Contains(t, msg, "executions:")
}

func TestEventually(t *testing.T) {
	t.Parallel()
	n := 0
	Eventually(t, time.Minute, "third time", func() (bool, string) { n++; return n == 3, "" })
	require.Equal(t, 3, n)
	msg := failureOf(t, func(tb testing.TB) {
		Eventually(tb, 30*time.Millisecond, "never", func() (bool, string) { return false, "last word" })
	})
	require.Equal(t, "never: not within 30ms: last word", msg)
	n = 0
	start := time.Now()
	Poll(t, 30*time.Millisecond, time.Minute, "second time", func() (bool, string) { n++; return n == 2, "" })
	require.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond, "Poll waited its interval between asks")
}

func TestRepeat(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	stop := Repeat(t, time.Millisecond, func() { calls.Add(1) })
	Eventually(t, time.Minute, "called again and again", func() (bool, string) {
		return calls.Load() >= 3, fmt.Sprint(calls.Load())
	})
	stop()
	after := calls.Load()
	stop()
	time.Sleep(20 * time.Millisecond) // would show a call after stop; nothing to wait for
	require.Equal(t, after, calls.Load(), "no call after stop returned")
}

func TestListenPorts(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err, "a connection: its socket is not a listening one")
	defer c.Close()
	port := l.Addr().(*net.TCPAddr).Port
	ports, err := ListenPorts(os.Getpid())
	require.NoError(t, err)
	require.Contains(t, ports, port)
	require.NotContains(t, ports, c.LocalAddr().(*net.TCPAddr).Port)
	p := Start(t, sh("exec sleep 1000"))
	ports, err = ListenPorts(p.Pid())
	require.NoError(t, err)
	require.Empty(t, ports, "a process that listens on nothing")
	_, err = ListenPorts(-1)
	require.Error(t, err)
}

func TestHTTP(t *testing.T) {
	t.Parallel()
	var healthy atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			http.Error(w, "redis unavailable", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/auth", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(r.Method + " " + r.Header.Get("Authorization")))
	})
	addr := FreeAddr(t)
	l, err := net.Listen("tcp", addr)
	require.NoError(t, err, "FreeAddr's address can be listened on")
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })

	code, body, err := HTTP(http.MethodPost, "http://"+addr+"/auth", "tok")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "POST Bearer tok", body)
	code, body, err = HTTP(http.MethodGet, "http://"+addr+"/auth", "")
	require.NoError(t, err)
	require.Equal(t, "GET ", body, code)

	serve := Start(t, sh("echo serving; exec sleep 1000"))
	msg := failureOf(t, func(tb testing.TB) { waitHealthy(tb, addr, serve, 100*time.Millisecond) })
	require.Contains(t, msg, "answers 200 ok: not within 100ms: Service Unavailable: redis unavailable")
	require.Contains(t, msg, "serving", "the message shows serve's output")
	healthy.Store(true)
	WaitHealthy(t, addr, serve)
	_, _, err = HTTP(http.MethodGet, "http://"+FreeAddr(t)+"/", "")
	require.Error(t, err, "nothing listens")
}
