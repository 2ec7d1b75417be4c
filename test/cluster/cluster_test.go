//go:build cluster

package cluster_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/redistest"
	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
)

// Sizes of the Cluster scenario.
const (
	clusterJobs     = 20
	clusterItems    = 100 // per Job
	clusterBatch    = 10  // create --batch-size
	clusterParallel = 2   // worker --concurrency
)

// jobsOnEveryNode names n Jobs so that every node of c serves the slot of
// some of them, as evenly as names allow, found with the Cluster's own
// CLUSTER KEYSLOT and CLUSTER SLOTS. It returns the names by node.
func jobsOnEveryNode(t testing.TB, c *redistest.Cluster, n int) [][]string {
	t.Helper()
	nodes := len(c.Nodes)
	most := (n + nodes - 1) / nodes
	byNode := make([][]string, nodes)
	placed := 0
	for i := 0; placed < n; i++ {
		require.Less(t, i, 10_000, "no spread of %d Job names over %d nodes", n, nodes)
		name := fmt.Sprintf("job-%03d", i)
		owner, err := c.Owner("workq:{" + name + "}:spec")
		require.NoError(t, err)
		if len(byNode[owner]) < most {
			byNode[owner] = append(byNode[owner], name)
			placed++
		}
	}
	for i, names := range byNode {
		require.NotEmpty(t, names, "node %d serves some Job", i)
	}
	return byNode
}

// metricLine matches one sample of workq_job_items{state="succeeded"}.
var metricLine = regexp.MustCompile(`(?m)^workq_job_items\{job="([^"]+)",state="succeeded"\} (\d+)$`)

func TestClusterRunsJobsOnEveryNodeThroughAPrimaryRestart(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	e := newEnv(t, c.URL())
	t.Logf("%s, URL %s", c, c.URL())

	byNode := jobsOnEveryNode(t, c, clusterJobs)
	// The node that holds the registry of Job names is the one restarted:
	// list, serve and the controller all start from it.
	victim, err := c.Owner(store.RegistryKey)
	require.NoError(t, err)
	var jobs, victimJobs, otherJobs []string
	for node, names := range byNode {
		t.Logf("node %d (%s) serves %v", node, c.Nodes[node].Addr, names)
		jobs = append(jobs, names...)
		if node == victim {
			victimJobs = append(victimJobs, names...)
		} else {
			otherJobs = append(otherJobs, names...)
		}
	}
	slices.Sort(jobs)

	items := map[string][]string{}
	all := map[string]bool{}
	for _, j := range jobs {
		items[j] = e.load(j, clusterItems, "--batch-size", strconv.Itoa(clusterBatch), "--lease", "10s")
		for _, it := range items[j] {
			all[it] = true
		}
	}

	addr := testkit.FreeAddr(t)
	serve := e.startCoord("serve", "serve", "--listen", addr, "--interval", "200ms")
	testkit.WaitHealthy(t, addr, serve)

	var workers []*testkit.Proc
	for _, j := range jobs {
		workers = append(workers, e.worker("worker-"+j, j, "--concurrency", strconv.Itoa(clusterParallel)))
	}

	victimTotal := int64(len(victimJobs) * clusterItems)
	// The Jobs of the other primaries go on while it is down.
	e.restartMidRun(t, c, victim, victimJobs, otherJobs, victimTotal, 30*time.Second)
	require.False(t, serve.Exited(), "serve rides out the restart: %s", serve)

	e.waitComplete(3*time.Minute, jobs...)
	for _, w := range workers {
		w.Wait(t, time.Minute)
	}

	t.Run("EveryWorkerExitsZero", func(t *testing.T) {
		// Also a worker whose Job drained while its node restarted (it
		// answers CLUSTERDOWN until it has caught up): it waits for Redis
		// to read and record how its Job ended.
		for _, w := range workers {
			require.Equal(t, 0, w.Result().Code, "%s", w)
		}
	})

	t.Run("EveryItemRanAndIsCountedOnce", func(t *testing.T) {
		runs := e.executions()
		requireOnlyItems(t, runs, all)
		var twice, extra, takeovers int64
		for _, j := range jobs {
			tl := e.account(j, items[j], runs)
			twice += tl.ExecutedTwice
			extra += tl.ExtraRuns
			takeovers += tl.Takeovers
		}
		// What may run twice is at most what the restarted node's workers
		// held at the kill: a lease per free executor, and one ahead.
		bound := int64(len(victimJobs) * (clusterParallel + 1) * clusterBatch)
		require.LessOrEqual(t, twice, bound, "items run twice")
		t.Logf("%d Jobs, %d items: all succeeded once; %d items ran twice (%d extra runs, bound %d), %d leases taken over",
			len(jobs), len(all), twice, extra, bound, takeovers)
	})

	t.Run("ListAndStatusSeeEveryJobOnEveryNode", func(t *testing.T) {
		requireAllComplete(t, "list through the cluster URL", e.listJSON(c.URL()), jobs)
		for _, j := range jobs {
			s := e.statusJSON(c.URL(), j)
			require.Equal(t, jobstate.PhaseComplete, s.Phase, j)
			require.Equal(t, int64(clusterItems), s.Items.Succeeded, j)
		}
	})

	t.Run("ASingleNodeURLReachesTheWholeCluster", func(t *testing.T) {
		// A node other than the URL's first seed, as a plain redis:// URL:
		// the binaries find that it is a cluster node.
		one := c.Nodes[(victim+1)%len(c.Nodes)]
		requireAllComplete(t, "list through "+one.URL(), e.listJSON(one.URL()), jobs)
		for node, names := range byNode {
			s := e.statusJSON(one.URL(), names[0])
			require.Equal(t, jobstate.PhaseComplete, s.Phase, "%s on node %d", names[0], node)
			require.Equal(t, int64(clusterItems), s.Items.Succeeded, "%s on node %d", names[0], node)
		}
	})

	t.Run("ServeAPIAndMetricsSeeEveryJob", func(t *testing.T) {
		var last string
		testkit.Eventually(t, time.Minute, "/api/jobs shows every Job Complete", func() (bool, string) {
			code, body, err := testkit.HTTP(http.MethodGet, "http://"+addr+"/api/jobs", "")
			if err != nil || code != http.StatusOK {
				return false, fmt.Sprintf("%d %v %s", code, err, body)
			}
			var v struct {
				Jobs   []jobstate.Status `json:"jobs"`
				Errors []json.RawMessage `json:"errors"`
			}
			if err := json.Unmarshal([]byte(body), &v); err != nil {
				return false, err.Error()
			}
			got := map[string]jobstate.Status{}
			for _, s := range v.Jobs {
				got[s.Name] = s
			}
			last = body
			return len(v.Errors) == 0 && allComplete(got, jobs) == "", allComplete(got, jobs)
		})
		require.NotEmpty(t, last)

		testkit.Eventually(t, time.Minute, "/metrics has every Job's succeeded items", func() (bool, string) {
			code, body, err := testkit.HTTP(http.MethodGet, "http://"+addr+"/metrics", "")
			if err != nil || code != http.StatusOK {
				return false, fmt.Sprintf("%d %v", code, err)
			}
			got := map[string]string{}
			for _, m := range metricLine.FindAllStringSubmatch(body, -1) {
				got[m[1]] = m[2]
			}
			want := map[string]string{}
			for _, j := range jobs {
				want[j] = strconv.Itoa(clusterItems)
			}
			ok := fmt.Sprint(got) == fmt.Sprint(want) &&
				regexp.MustCompile(`(?m)^workq_redis_up 1$`).MatchString(body) &&
				regexp.MustCompile(`(?m)^workq_job_read_errors 0$`).MatchString(body)
			return ok, fmt.Sprintf("succeeded by job %v", got)
		})
		serve.Signal(t, syscall.SIGTERM)
		require.Equal(t, 0, serve.Wait(t, time.Minute), "%s", serve)
	})
}

// allComplete returns "" when got has exactly jobs, each Complete with
// every item succeeded, else what differs.
func allComplete(got map[string]jobstate.Status, jobs []string) string {
	if len(got) != len(jobs) {
		names := make([]string, 0, len(got))
		for n := range got {
			names = append(names, n)
		}
		slices.Sort(names)
		return fmt.Sprintf("%d Jobs %v, want %d", len(got), names, len(jobs))
	}
	for _, j := range jobs {
		s, ok := got[j]
		switch {
		case !ok:
			return j + " is missing"
		case s.Phase != jobstate.PhaseComplete || s.Items.Succeeded != clusterItems:
			return fmt.Sprintf("%s: phase %s, %d succeeded", j, s.Phase, s.Items.Succeeded)
		}
	}
	return ""
}

func requireAllComplete(t *testing.T, what string, got map[string]jobstate.Status, jobs []string) {
	t.Helper()
	require.Empty(t, allComplete(got, jobs), what)
}
