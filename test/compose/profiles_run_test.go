//go:build compose && cluster

package compose

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestComposeRedisProfiles runs the example Job on the `cluster` profile's
// Redis Cluster, then on the `sentinel` profile's primary and replica, where
// it kills the primary's container mid-Job. It needs both build tags (the
// compose step of .ci/run leaves it to the cluster step):
//
//	go test -tags 'compose cluster' -count=1 -run TestComposeRedisProfiles -timeout 15m ./test/compose/
func TestComposeRedisProfiles(t *testing.T) {
	s := newStack(t)
	t.Cleanup(func() {
		for _, p := range []string{"cluster", "sentinel"} {
			if out, err := s.run(3*time.Minute, nil, "--profile", p, "down", "--volumes", "--timeout", "5"); err != nil {
				t.Logf("compose --profile %s down: %v\n%s", p, err, out)
			}
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			for _, svc := range []string{"redis-cluster-init", "redis-node-1", "redis-1", "redis-2", "sentinel-1", "sentinel-2", "sentinel-3"} {
				out, err := s.run(time.Minute, nil, "--profile", "cluster", "--profile", "sentinel", "logs", "--no-color", "--tail", "300", svc)
				t.Logf("logs of %s (err %v):\n%s", svc, err, out)
			}
		}
	})
	dbsize := func(t *testing.T, service string) int {
		t.Helper()
		out, err := s.exec(service, "redis-cli", "dbsize")
		require.NoError(t, err)
		n, err := strconv.Atoi(strings.TrimSpace(out))
		require.NoError(t, err, out)
		return n
	}

	t.Run("ClusterProfileRunsTheExampleJob", func(t *testing.T) {
		start := time.Now()
		s.env["WORKQ_REDIS_URL"] = clusterURL
		s.must(t, 5*time.Minute, nil, "--profile", "cluster", "up", "--detach", "--no-build")
		init := s.waitExited(t, "redis-cluster-init", 1, 3*time.Minute)
		require.Equal(t, 0, init[0].ExitCode, "redis-cluster-init joins the nodes")
		loader := s.waitExited(t, "loader", 1, 3*time.Minute)
		require.Equal(t, 0, loader[0].ExitCode, "the loader waits for the cluster, then loads the Job")
		st := s.waitComplete(t, "example", 3*time.Minute)
		require.Positive(t, st.Items.Total)
		require.Equal(t, st.Items.Total, st.Items.Succeeded, st.String())
		for _, w := range s.waitExited(t, "worker", 3, 2*time.Minute) {
			require.Equal(t, 0, w.ExitCode, "worker %s", w.Name)
		}
		require.Zero(t, dbsize(t, "redis"), "the one Redis idles: the Job lives on the cluster")
		keys := 0
		for _, n := range []string{"redis-node-1", "redis-node-2", "redis-node-3"} {
			keys += dbsize(t, n)
		}
		require.Positive(t, keys)
		// A second `up` finds the cluster formed and changes nothing.
		s.must(t, 5*time.Minute, nil, "--profile", "cluster", "up", "--detach", "--no-build")
		init = s.waitExited(t, "redis-cluster-init", 1, 3*time.Minute)
		require.Equal(t, 0, init[0].ExitCode)
		st = s.waitComplete(t, "example", time.Minute)
		require.Equal(t, st.Items.Total, st.Items.Succeeded, st.String())
		t.Logf("example Job of %d items Complete on the cluster profile in %s", st.Items.Total, time.Since(start).Round(time.Second))

		// A sharded Job: created by `coordinator create --shards 3`, its
		// shards placed one per node, drained by the same workers.
		const sharded, n = "sharded", 3000
		s.env["WORKQ_JOB"] = sharded
		s.createJob(t, sharded, makeItems("s", n), "--shards", "3")
		s.must(t, 5*time.Minute, nil, "--profile", "cluster", "up", "--detach", "--no-build")
		st = s.waitComplete(t, sharded, 3*time.Minute)
		require.Equal(t, n, st.Items.Total, st.String())
		require.Equal(t, n, st.Items.Succeeded, st.String())
		for _, w := range s.waitExited(t, "worker", 3, 2*time.Minute) {
			require.Equal(t, 0, w.ExitCode, "worker %s", w.Name)
		}
		for _, node := range []string{"redis-node-1", "redis-node-2", "redis-node-3"} {
			out, err := s.exec(node, "redis-cli", "--scan", "--pattern", "workq:{"+sharded+"-shard-*}:spec")
			require.NoError(t, err)
			require.Len(t, strings.Fields(out), 1, "one shard on %s: %q", node, out)
		}
		s.must(t, 3*time.Minute, nil, "--profile", "cluster", "down", "--volumes", "--timeout", "5")
	})

	t.Run("SentinelProfileFollowsAFailover", func(t *testing.T) {
		const job, n = "failover", 2000
		start := time.Now()
		s.env["WORKQ_REDIS_URL"] = sentinelURL
		s.env["WORKQ_JOB"] = "example"
		s.must(t, 5*time.Minute, nil, "--profile", "sentinel", "up", "--detach", "--no-build")
		st := s.waitComplete(t, "example", 3*time.Minute)
		require.Equal(t, st.Items.Total, st.Items.Succeeded, st.String())
		s.waitExited(t, "worker", 3, 2*time.Minute)

		s.env["WORKQ_JOB"] = job
		s.env["WORKQ_CONCURRENCY"] = "2"
		s.createJob(t, job, makeItems("word", n), "--parallelism", "3")
		s.must(t, 5*time.Minute, nil, "--profile", "sentinel", "up", "--detach", "--no-build")
		mid := s.waitStatus(t, job, 3*time.Minute, "300 items succeeded", func(st jobStatus) bool { return st.Items.Succeeded >= 300 })
		require.Less(t, mid.Items.Succeeded, n, "the primary dies mid-Job: %s", mid)
		s.must(t, time.Minute, nil, "--profile", "sentinel", "kill", "redis-1")
		t.Logf("killed redis-1 at %s", mid)
		waitFor(t, 2*time.Minute, "the Sentinels promote redis-2", func() (bool, string) {
			out, err := s.exec("sentinel-1", "redis-cli", "-p", "26379", "sentinel", "get-master-addr-by-name", "workq")
			return err == nil && strings.Contains(out, "redis-2"), fmt.Sprint(out, err)
		})

		st = s.waitComplete(t, job, 5*time.Minute)
		require.Equal(t, n, st.Items.Total, st.String())
		require.Equal(t, n, st.Items.Succeeded, "every item counted once across the failover: %s", st)
		require.Zero(t, st.Items.Dead, st.String())
		for _, w := range s.waitExited(t, "worker", 3, 2*time.Minute) {
			require.Equal(t, 0, w.ExitCode, "worker %s", w.Name)
		}

		// The old primary comes back as a replica of the new one, for good:
		// Sentinel rewrote its config file on its volume.
		s.must(t, time.Minute, nil, "--profile", "sentinel", "start", "redis-1")
		waitFor(t, 2*time.Minute, "redis-1 replicates redis-2", func() (bool, string) {
			out, err := s.exec("redis-1", "redis-cli", "info", "replication")
			return err == nil && strings.Contains(out, "role:slave") && strings.Contains(out, "master_host:redis-2") &&
				strings.Contains(out, "master_link_status:up"), fmt.Sprint(out, err)
		})
		t.Logf("%d items Complete through a Sentinel failover in %s: %s", n, time.Since(start).Round(time.Second), st)
	})
}
