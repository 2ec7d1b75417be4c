//go:build cluster

package cluster_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/redistest"
	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
)

// Sizes of the Sentinel scenario.
const (
	failoverItems    = 1500
	failoverWorkers  = 3
	failoverParallel = 2  // worker --concurrency
	failoverBatch    = 10 // create --batch-size
)

// failoverRow is one line of the measured table.
type failoverRow struct {
	Replication   string
	Acks          string
	Items         int64
	Succeeded     int64
	ExecutedTwice int64
	ExtraRuns     int64
	Takeovers     int64
	Refused       int64 // acks refused as stale, from the workers' logs
	AtKill        int64 // items succeeded when the primary was killed
	Rate          float64
	Promotion     time.Duration
	ToComplete    time.Duration
}

// sentinelGroup is a primary, its replica and three Sentinels, with the
// replica in step (redistest.Sentinel) or behind (redistest.LaggedSentinel).
type sentinelGroup interface {
	URL() string
	Primary() (string, error)
	WaitFailover(ctx context.Context, old string) (string, error)
	WaitReplica(ctx context.Context, addr string) (string, error)
	Server(addr string) *redistest.Server
}

// replicaLag is how far behind the lagged replica is.
const replicaLag = 100 * time.Millisecond

// TestSentinelFailover runs a Job through a redis+sentinel:// URL while
// its primary is killed and Sentinel promotes the replica: with the
// workers' asynchronous acks (the default) and with --ack-replicas 1, each
// with the replica in step with its primary on loopback and with the
// replica 100ms behind. In all four, every item must be counted succeeded
// exactly once and have run; the items that ran twice are measured, not
// bounded. With WORKQ_WRITE_DOCS=1 the table goes into docs/RELIABILITY.md.
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	type mode struct {
		name, acks string
		flags      []string
	}
	modes := []mode{
		{"AsynchronousAcks", "asynchronous (default)", nil},
		{"AckReplicas1", "`--ack-replicas 1`", []string{"--ack-replicas", "1"}},
	}
	lags := []struct {
		name, what string
		lag        time.Duration
	}{
		{"ReplicaInStep", "in step (loopback)", 0},
		{"Replica100msBehind", fmt.Sprintf("%s behind", replicaLag), replicaLag},
	}
	rows := make([]failoverRow, len(lags)*len(modes))
	began := time.Now()
	t.Run("Scenarios", func(t *testing.T) {
		for i, l := range lags {
			t.Run(l.name, func(t *testing.T) {
				t.Parallel()
				for k, m := range modes {
					t.Run(m.name, func(t *testing.T) {
						var g sentinelGroup
						var data, sentinels []*redistest.Server
						if l.lag > 0 {
							lg := redistest.StartLaggedSentinel(t, l.lag)
							g, data, sentinels = lg, lg.Data, lg.Sentinels
						} else {
							st := redistest.StartSentinel(t)
							g, data, sentinels = st, st.Data, st.Sentinels
						}
						logsOnFailure(t, slices.Concat(data, sentinels)...)
						r := failover(t, g, data, m.flags)
						r.Replication, r.Acks = l.what, m.acks
						rows[i*len(modes)+k] = r
					})
				}
			})
		}
	})
	if t.Failed() {
		return
	}
	table := renderFailover(rows)
	t.Logf("Sentinel failover (%s):\n%s", time.Since(began).Round(time.Second), table)
	if os.Getenv("WORKQ_WRITE_DOCS") == "1" {
		require.NoError(t, writeReplicationDoc(table))
	}
}

// failover runs one Job of failoverItems through a Sentinel group and
// kills the primary once a third of them succeeded.
func failover(t *testing.T, g sentinelGroup, data []*redistest.Server, workerFlags []string) failoverRow {
	e := newEnv(t, g.URL())
	const job = "failover"
	items := e.load(job, failoverItems, "--batch-size", strconv.Itoa(failoverBatch), "--lease", "5s")
	first, err := g.Primary()
	require.NoError(t, err)
	// Every item is on the replica before anything runs: what the
	// failover can lose is the workers' writes alone.
	acked, err := g.Server(first).Do("WAIT", "1", "10000")
	require.NoError(t, err)
	require.Equal(t, int64(1), acked, "the replica has every item")

	flags := append([]string{"--concurrency", strconv.Itoa(failoverParallel)}, workerFlags...)
	var workers []*testkit.Proc
	started := time.Now()
	for i := range failoverWorkers {
		workers = append(workers, e.worker(fmt.Sprintf("worker-%d", i), job, flags...))
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		// A worker still running shows where it waits: a Go program
		// prints its goroutines on SIGQUIT.
		for _, w := range workers {
			if !w.Exited() && w.TrySignal(syscall.SIGQUIT) == nil {
				for end := time.Now().Add(5 * time.Second); !w.Exited() && time.Now().Before(end); {
					time.Sleep(10 * time.Millisecond)
				}
			}
			r := w.Result()
			t.Logf("%s: exit %d (%v); stderr:\n%s", w.Name(), r.Code, r.Err, r.Stderr)
		}
	})
	testkit.Eventually(t, 3*time.Minute, "a third of the items succeeded", func() (bool, string) {
		n, msg := e.succeeded(job)
		return n >= failoverItems/3, fmt.Sprintf("%d %s", n, msg)
	})
	atKill, msg := e.succeeded(job)
	require.Empty(t, msg)
	require.Less(t, atKill, int64(failoverItems), "the primary dies mid-Job")

	killed, err := g.Primary()
	require.NoError(t, err)
	old := g.Server(killed)
	require.NotNil(t, old, "the Sentinels' primary %s is a data server of the group", killed)
	old.Stop()
	killedAt := time.Now()
	rate := float64(atKill) / killedAt.Sub(started).Seconds()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	promoted, err := g.WaitFailover(ctx, killed)
	require.NoError(t, err)
	promotion := time.Since(killedAt)
	t.Logf("killed the primary %s with %d of %d items succeeded; the Sentinels promoted %s after %s",
		killed, atKill, failoverItems, promoted, promotion.Round(10*time.Millisecond))
	// The old primary comes back on its AOF, and the Sentinels make it a
	// replica of the promoted one (it takes them up to their ten-second
	// INFO period): until then --ack-replicas 1 has no replica to wait for.
	require.NoError(t, old.Restart())

	e.waitComplete(3*time.Minute, job)
	for _, w := range workers {
		require.Equal(t, 0, w.Wait(t, time.Minute), "%s", w)
	}
	s, err := e.status(job)
	require.NoError(t, err)
	done := slices.IndexFunc(s.Conditions, func(c jobstate.Condition) bool { return c.Type == jobstate.ConditionComplete })
	require.GreaterOrEqual(t, done, 0, "%+v", s.Conditions)
	toComplete := s.Conditions[done].LastTransitionTime.Sub(killedAt)

	runs := e.executions()
	want := map[string]bool{}
	for _, it := range items {
		want[it] = true
	}
	requireOnlyItems(t, runs, want)
	tl := e.account(job, items, runs)

	// The two data servers end as a primary and its replica. On a loaded
	// machine the Sentinels may fail over again (a server that misses
	// their one-second deadline looks down), even after the Job ended: a
	// primary they report is only the end once the other server is an
	// in-sync replica of it.
	var now string
	testkit.Eventually(t, 2*time.Minute, "the other server is an in-sync replica of the Sentinels' primary", func() (bool, string) {
		p, err := g.Primary()
		if err != nil {
			return false, err.Error()
		}
		now = p
		other := slices.IndexFunc(data, func(s *redistest.Server) bool { return s != g.Server(p) })
		if other < 0 {
			return false, "the Sentinels' primary " + p + " is no data server of the group"
		}
		rctx, rcancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer rcancel()
		primary, err := g.WaitReplica(rctx, data[other].Addr)
		if err != nil {
			return false, err.Error()
		}
		return primary == p, fmt.Sprintf("%s replicates from %s; the Sentinels report %s", data[other].Addr, primary, p)
	})
	if now != promoted {
		t.Logf("the Sentinels failed over again, from %s to %s", promoted, now)
	}
	r := failoverRow{Items: tl.Items, Succeeded: tl.Items, ExecutedTwice: tl.ExecutedTwice, ExtraRuns: tl.ExtraRuns,
		Takeovers: tl.Takeovers, AtKill: atKill, Rate: rate, Promotion: promotion, ToComplete: toComplete}
	for _, w := range workers {
		r.Refused += refusedAcks(w.Stderr())
	}
	t.Logf("%+v", r)
	return r
}

// logsOnFailure logs the end of each server's log when the test fails.
func logsOnFailure(t *testing.T, servers ...*redistest.Server) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, s := range servers {
			b, err := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("log of %s (%v):\n%s", s.Addr, err, b)
		}
	})
}

// refusedLine is a worker's warning about acks refused as stale.
var refusedLine = regexp.MustCompile(`msg="stale results refused[^"]*" .*\bitems=(\d+)`)

// refusedAcks sums the items of a worker's stale-ack warnings.
func refusedAcks(log string) int64 {
	var n int64
	for _, m := range refusedLine.FindAllStringSubmatch(log, -1) {
		v, _ := strconv.ParseInt(m[1], 10, 64)
		n += v
	}
	return n
}

func renderFailover(rows []failoverRow) string {
	var b strings.Builder
	b.WriteString("| replica | worker acks | items | succeeded (counted once) | lost | ran twice | leases taken over | acks refused as stale | items/s before the kill | succeeded at the kill | kill → promoted | kill → Complete |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %d | %d | 0 | %d | %d | %d | %.0f | %d | %s | %s |\n", r.Replication, r.Acks, r.Items, r.Succeeded,
			r.ExecutedTwice, r.Takeovers, r.Refused, r.Rate, r.AtKill, r.Promotion.Round(100*time.Millisecond), r.ToComplete.Round(100*time.Millisecond))
	}
	return b.String()
}

// docCommand is the command that writes the table.
const docCommand = "WORKQ_REQUIRE_REDIS=1 WORKQ_WRITE_DOCS=1 go test -tags cluster -count=1 ./test/cluster/ -run TestSentinelFailover -v"

// writeReplicationDoc replaces the generated table inside the replication
// section of docs/RELIABILITY.md.
func writeReplicationDoc(table string) error {
	path := filepath.Join("..", "..", "docs", "RELIABILITY.md")
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	const begin, end = "<!-- replication-table:begin -->", "<!-- replication-table:end -->"
	s := string(old)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %s ... %s block", path, begin, end)
	}
	block := fmt.Sprintf("%s\nProduced by `%s`\non %s (%d CPUs, %s/%s), %s; %d items, %d workers × %d, batches of ≤ %d, lease 5s:\n\n%s%s",
		begin, docCommand, time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH,
		redisVersion(), failoverItems, failoverWorkers, failoverParallel, failoverBatch, table, end)
	return os.WriteFile(path, []byte(s[:i]+block+s[j+len(end):]), 0o644)
}

// redisVersion is the redis-server version, for the table's caption.
func redisVersion() string {
	out, err := runOutput("redis-server", "--version")
	if err != nil {
		return "redis-server (version unknown)"
	}
	if m := regexp.MustCompile(`v=(\S+)`).FindStringSubmatch(out); m != nil {
		return "Redis " + m[1]
	}
	return strings.TrimSpace(out)
}
