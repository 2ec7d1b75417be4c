//go:build cluster

package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/redistest"
	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

// Sizes of the sharded Job scenario.
const (
	shardedShards   = 3    // create --shards: one per node
	shardedItems    = 3001 // not a multiple of the shards: one shard gets one more
	shardedWorkers  = 3
	shardedParallel = 3  // worker --concurrency: one lane per shard
	shardedBatch    = 10 // create --batch-size
)

// placedShards creates sharded Job name of k shards on c and returns
// its shards' names and the node of each, read from the Job's record and
// the Cluster's own CLUSTER KEYSLOT and CLUSTER SLOTS.
func placedShards(t testing.TB, c *redistest.Cluster, name string, k int, create ...string) ([]string, []int) {
	t.Helper()
	ctx := context.Background()
	s, err := store.Open(ctx, store.DialOptions{URL: c.URL()})
	require.NoError(t, err)
	defer s.Close()
	if len(create) == 0 {
		_, err = s.Create(ctx, name, jobstate.Spec{Shards: k})
		require.NoError(t, err)
	}
	g, err := s.Group(ctx, name)
	require.NoError(t, err)
	require.Len(t, g.Shards, k)
	nodes := make([]int, k)
	for i, sh := range g.Shards {
		nodes[i], err = c.Owner(store.KeysFor(sh).Key("spec"))
		require.NoError(t, err)
	}
	return g.Shards, nodes
}

// TestShardsSpreadEvenlyOverTheNodes: whatever a sharded Job's name, its
// K shards land on min(K, nodes) nodes of a Cluster, at most ceil(K /
// nodes) on one: a shard whose default name hashes to a full node is named
// with a suffix (docs/SCALING.md, section 4).
func TestShardsSpreadEvenlyOverTheNodes(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	for i, k := range []int{2, 3, 4, 6, 7, 12} {
		for _, name := range []string{fmt.Sprintf("spread%d", i), fmt.Sprintf("other-name-%d", i)} {
			shards, nodes := placedShards(t, c, name, k)
			per := map[int]int{}
			for _, n := range nodes {
				per[n]++
			}
			require.Len(t, per, min(k, len(c.Nodes)), "%s: shards %v on nodes %v", name, shards, nodes)
			for n, got := range per {
				require.LessOrEqual(t, got, (k+len(c.Nodes)-1)/len(c.Nodes), "%s: node %d holds %d of %d shards (%v)", name, n, got, k, shards)
			}
		}
	}
}

// TestShardedJobSpreadsOverTheClusterThroughAPrimaryRestart runs one Job
// of three shards, each served by another primary of a three-node
// Cluster, with worker processes that each work on every shard, while the
// primary that holds the Job's record and one of its shards is killed and
// started again on its AOF. The shards on the other primaries go on
// meanwhile; the Job ends Complete with status the exact sum of its
// shards, every item counted once and run, each shard dealt its share of
// the items, and every worker exiting 0.
func TestShardedJobSpreadsOverTheClusterThroughAPrimaryRestart(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	e := newEnv(t, c.URL())
	t.Logf("%s, URL %s", c, c.URL())

	job := "sharded"
	items := e.load(job, shardedItems, "--shards", strconv.Itoa(shardedShards),
		"--batch-size", strconv.Itoa(shardedBatch), "--lease", "10s")
	// create placed the shards: one on each node, whatever the name.
	shards, nodes := placedShards(t, c, job, shardedShards, "created")
	for k := range shards {
		t.Logf("shard %s on node %d (%s)", shards[k], nodes[k], c.Nodes[nodes[k]].Addr)
	}
	sorted := slices.Clone(nodes)
	slices.Sort(sorted)
	require.Len(t, slices.Compact(sorted), shardedShards, "one shard per node: %v on %v", shards, nodes)
	// The node restarted holds the Job's record, which status, push and
	// every worker's start read, and one of its shards.
	victim, err := c.Owner(store.KeysFor(job).Key("group"))
	require.NoError(t, err)
	victimShard := shards[slices.Index(nodes, victim)]
	otherShards := slices.DeleteFunc(slices.Clone(shards), func(s string) bool { return s == victimShard })
	all := map[string]bool{}
	for _, it := range items {
		all[it] = true
	}
	vs, err := e.status(victimShard)
	require.NoError(t, err)
	victimTotal := vs.Items.Total
	require.Positive(t, victimTotal, "the restarted node's shard has items")

	var workers []*testkit.Proc
	for i := range shardedWorkers {
		workers = append(workers, e.worker(fmt.Sprintf("worker-%d", i), job, "--concurrency", strconv.Itoa(shardedParallel)))
	}

	// It holds the record of the Job and one of its shards; the lanes of
	// the same worker processes on the other shards go on while it is down.
	e.restartMidRun(t, c, victim, []string{victimShard}, otherShards, victimTotal, time.Minute)

	e.waitComplete(5*time.Minute, job)
	for _, w := range workers {
		w.Wait(t, 2*time.Minute)
	}

	t.Run("EveryWorkerExitsZero", func(t *testing.T) {
		// Exit 0 means every shard succeeded, the restarted one too.
		for _, w := range workers {
			require.Equal(t, 0, w.Result().Code, "%s", w)
		}
	})

	t.Run("EveryItemRanAndIsCountedOnce", func(t *testing.T) {
		runs := e.executions()
		requireOnlyItems(t, runs, all)
		tl := e.account(job, items, runs)
		// What may run twice is at most what the workers held on the
		// restarted shard at the kill: a lease per executor of each lane
		// there, and one ahead per lane; bounded by all of them.
		bound := int64(shardedWorkers * (shardedParallel + min(shardedParallel, shardedShards)) * shardedBatch)
		require.LessOrEqual(t, tl.ExecutedTwice, bound, "items run twice")
		t.Logf("%d items over %d shards: all succeeded once; %d items ran twice (%d extra runs, bound %d), %d leases taken over",
			tl.Items, shardedShards, tl.ExecutedTwice, tl.ExtraRuns, bound, tl.Takeovers)
	})

	// The shards' own statuses, read once the Job is over.
	byShard := make([]jobstate.Status, len(shards))
	for k, sh := range shards {
		byShard[k], err = e.status(sh)
		require.NoError(t, err, sh)
	}

	t.Run("StatusIsTheSumOfTheShards", func(t *testing.T) {
		s := e.statusJSON(c.URL(), job)
		require.Equal(t, job, s.Name)
		require.Equal(t, jobstate.PhaseComplete, s.Phase, "%+v", s.Conditions)
		require.Equal(t, shardedShards, s.Spec.Shards)
		n := int64(shardedItems)
		require.Equal(t, n, s.Items.Total, "%+v", s.Items)
		require.Equal(t, n, s.Items.Succeeded, "%+v", s.Items)
		require.Zero(t, s.Items.Pending+s.Items.Leased+s.Items.Retrying+s.Items.Returned+s.Items.Dead, "%+v", s.Items)
		require.Zero(t, s.Active, "no executor is active")
		var sum jobstate.Items
		for k, sh := range byShard {
			require.Equal(t, jobstate.PhaseComplete, sh.Phase, "%s: %+v", shards[k], sh.Conditions)
			sum.Total += sh.Items.Total
			sum.Pending += sh.Items.Pending
			sum.Leased += sh.Items.Leased
			sum.Retrying += sh.Items.Retrying
			sum.Returned += sh.Items.Returned
			sum.Succeeded += sh.Items.Succeeded
			sum.Dead += sh.Items.Dead
			sum.FailedAttempts += sh.Items.FailedAttempts
			sum.Takeovers += sh.Items.Takeovers
		}
		require.Equal(t, sum, s.Items, "the Job's items are its shards' items added up")
	})

	t.Run("EachShardGotItsShare", func(t *testing.T) {
		// Dealt in turn: each shard within one item of N/K.
		var total int64
		for k, sh := range byShard {
			got := sh.Items.Total
			total += got
			require.LessOrEqual(t, abs(got*shardedShards-shardedItems), int64(shardedShards),
				"%s holds %d of %d items", shards[k], got, shardedItems)
			require.Equal(t, got, sh.Items.Succeeded, "%s: %+v", shards[k], sh.Items)
			t.Logf("%s (node %d): %d items", shards[k], nodes[k], got)
		}
		require.Equal(t, int64(shardedItems), total)
	})

	t.Run("ListShowsTheJobAndItsShards", func(t *testing.T) {
		// docs/SCALING.md: list shows the sharded Job's row, the sum of
		// its shards, and each shard as a Job.
		got := e.listJSON(c.URL())
		names := make([]string, 0, len(got))
		for n := range got {
			names = append(names, n)
		}
		slices.Sort(names)
		require.Equal(t, append([]string{job}, shards...), names)
		for k, sh := range shards {
			require.Equal(t, jobstate.PhaseComplete, got[sh].Phase, sh)
			require.Equal(t, byShard[k].Items, got[sh].Items, sh)
		}
		require.Equal(t, jobstate.PhaseComplete, got[job].Phase, job)
		require.Equal(t, int64(shardedItems), got[job].Items.Succeeded, "%+v", got[job].Items)
		require.Equal(t, int64(shardedItems), got[job].Items.Total, "%+v", got[job].Items)
	})
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// BenchmarkShardedJobOverCluster measures what sharding buys one Job on a
// Redis Cluster of three nodes: a work-queue Job of shardedBenchItems items
// that take no time (batch 1000), created with Shards 1 (one slot, so one
// node does all its work) and with Shards 3 (named so that each node
// serves one shard), drained by six in-process queue.Workers of
// concurrency 3 (on three shards, a lane of one executor per shard). AOF
// is off, as in BenchmarkJobsOverCluster. Each iteration drains a new Job;
// it reports items/s and each node's Redis CPU per 100k items.
//
//	go test -tags cluster -run '^$' -bench ShardedJobOverCluster -benchtime 1x ./test/cluster/
func BenchmarkShardedJobOverCluster(b *testing.B) {
	const (
		shardedBenchItems = 1_000_000
		workers           = 6
		concurrency       = 3
	)
	payload := make([][]byte, shardedBenchItems)
	for i := range payload {
		payload[i] = fmt.Appendf(nil, "item-%d", i)
	}
	for _, shards := range []int{1, 3} {
		b.Run(fmt.Sprintf("shards=%d", shards), func(b *testing.B) {
			// Only the drains are timed.
			b.StopTimer()
			c := redistest.StartCluster(b, 3)
			for _, n := range c.Nodes {
				_, err := n.Do("CONFIG", "SET", "appendonly", "no")
				require.NoError(b, err)
			}
			qc, err := queue.Connect(queue.Options{URL: c.URL()})
			require.NoError(b, err)
			b.Cleanup(func() { _ = qc.Close() })
			ctx := context.Background()
			cpu := make([]float64, len(c.Nodes))
			var drained time.Duration
			for i := range b.N {
				job := fmt.Sprintf("bench%d", i)
				require.NoError(b, qc.Create(ctx, job, jobstate.Spec{BatchSize: 1000, Shards: shards}))
				if shards > 1 {
					names, nodes := placedShards(b, c, job, shards, "created")
					b.Logf("%s: shards %v on nodes %v", job, names, nodes)
				} else {
					node, err := c.Owner(store.KeysFor(job).Key("spec"))
					require.NoError(b, err)
					b.Logf("%s: on node %d", job, node)
				}
				n, err := qc.Push(ctx, job, payload, queue.PushOptions{})
				require.NoError(b, err)
				require.Equal(b, int64(shardedBenchItems), n)
				_, err = qc.Seal(ctx, job)
				require.NoError(b, err)
				ws := noopWorkers(b, qc, job, workers, concurrency)
				b.StartTimer()
				d, used := drain(b, c, ws)
				b.StopTimer()
				drained += d
				for k, v := range used {
					cpu[k] += v
				}
				s, err := qc.Inspector().Status(ctx, job)
				require.NoError(b, err)
				require.Equal(b, int64(shardedBenchItems), s.Items.Succeeded, "%+v", s.Items)
				require.Equal(b, jobstate.PhaseComplete, s.Phase)
			}
			total := float64(b.N * shardedBenchItems)
			b.ReportMetric(total/drained.Seconds(), "items/s")
			for k, v := range cpu {
				b.ReportMetric(v/total*1e5, fmt.Sprintf("node%d-cpu-s/100k", k))
			}
		})
	}
}
