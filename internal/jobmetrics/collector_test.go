package jobmetrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/jobmetrics"
	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// t0 is the miniredis clock at the start of every test.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func TestMain(m *testing.M) {
	// Tests stop their Redis on purpose: the driver's own retries are noise.
	store.SetDriverLogger(quiet)
	os.Exit(m.Run())
}

func setup(t *testing.T) (*store.Store, *miniredis.Miniredis) {
	t.Helper()
	return testkit.MiniStore(t, t0)
}

func create(t *testing.T, s *store.Store, job string, spec jobstate.Spec, items ...string) {
	t.Helper()
	testkit.CreateJob(t, s, job, spec, items...)
}

// fakeSource answers from a table, to test what Redis cannot easily show.
type fakeSource struct {
	names   []string
	listErr error
	status  map[string]jobstate.Status
	errs    map[string]error
}

func (f fakeSource) Jobs(context.Context) ([]store.JobStatus, error) {
	if f.listErr != nil {
		return nil, f.listErr
	}
	out := make([]store.JobStatus, len(f.names))
	for i, n := range f.names {
		out[i] = store.JobStatus{Name: n, Status: f.status[n], Err: f.errs[n]}
	}
	return out, nil
}

func newRegistry(src jobmetrics.Source) *prometheus.Registry {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(jobmetrics.NewCollector(src, quiet))
	return reg
}

func compare(t *testing.T, g prometheus.Gatherer, want string, names ...string) {
	t.Helper()
	require.NoError(t, testutil.GatherAndCompare(g, strings.NewReader(want), names...))
}

func TestCollector(t *testing.T) {
	t.Parallel()

	t.Run("ExportsItemsWorkersAndPhaseOfARunningJob", func(t *testing.T) {
		t.Parallel()
		s, m := setup(t)
		ctx := context.Background()
		create(t, s, "thumbs", jobstate.Spec{MaxAttempts: 1, BatchSize: 3}, "a", "b", "c", "d", "e", "f")
		reg, err := s.Register(ctx, "thumbs", "", "w1", []byte(`{"id":"w1"}`))
		require.NoError(t, err)
		lease := func(seq int64, n int) *store.Lease {
			r, err := s.Lease(ctx, "thumbs", store.LeaseRequest{UID: reg.UID, Session: reg.Session, Worker: "w1", Seq: seq, Want: n, Max: n})
			require.NoError(t, err)
			require.NotNil(t, r.Lease)
			require.Len(t, r.Lease.Items, n)
			return r.Lease
		}
		a, b := lease(1, 3), lease(2, 1)
		// Of the first lease one item succeeds, one dies, one stays leased;
		// the second lease's item is handed back unstarted.
		res, err := s.Settle(ctx, "thumbs", store.SettleRequest{UID: reg.UID, Session: reg.Session, Seq: 1, Leases: []store.Settlement{
			{Token: a.Token, Started: -1, Acked: []int64{a.Items[0].ID},
				Failed: []store.Failure{{ID: a.Items[1].ID, Action: store.ActionCount, Err: "boom"}}},
			{Token: b.Token, Started: -1, Released: []int64{b.Items[0].ID}},
		}})
		require.NoError(t, err)
		require.Equal(t, store.SettleResult{Acked: 1, Failed: 1, Released: 1, Dead: 1}, res)
		m.SetTime(t0.Add(2 * time.Second))

		compare(t, newRegistry(s), `
# HELP workq_job_items Items of a Job by state: pending, returned (handed back unstarted), leased, retrying, dead or succeeded.
# TYPE workq_job_items gauge
workq_job_items{job="thumbs",state="dead"} 1
workq_job_items{job="thumbs",state="leased"} 1
workq_job_items{job="thumbs",state="pending"} 2
workq_job_items{job="thumbs",state="retrying"} 0
workq_job_items{job="thumbs",state="returned"} 1
workq_job_items{job="thumbs",state="succeeded"} 1
# HELP workq_job_items_total Items a Job knows of: every item pushed so far, or the completions of an Indexed Job.
# TYPE workq_job_items_total counter
workq_job_items_total{job="thumbs"} 6
# HELP workq_job_failed_attempts_total Failed runs of a Job's items: nacks and expired leases.
# TYPE workq_job_failed_attempts_total counter
workq_job_failed_attempts_total{job="thumbs"} 1
# HELP workq_job_lease_takeovers_total Leases of a Job that expired and were reclaimed for other workers.
# TYPE workq_job_lease_takeovers_total counter
workq_job_lease_takeovers_total{job="thumbs"} 0
# HELP workq_job_leases Open leases (batches) held by a Job's workers.
# TYPE workq_job_leases gauge
workq_job_leases{job="thumbs"} 1
# HELP workq_job_workers Workers of a Job: active (registered, not terminated) and ready (fresh heartbeat).
# TYPE workq_job_workers gauge
workq_job_workers{job="thumbs",state="active"} 1
workq_job_workers{job="thumbs",state="ready"} 1
# HELP workq_job_worker_exits_total Workers of a Job that ended, by outcome: succeeded (exited 0) or failed (crashed, lost or exited non-zero).
# TYPE workq_job_worker_exits_total counter
workq_job_worker_exits_total{job="thumbs",outcome="failed"} 0
workq_job_worker_exits_total{job="thumbs",outcome="succeeded"} 0
# HELP workq_job_oldest_pending_age_seconds How long the oldest pending item of a Job has waited; 0 when nothing is pending.
# TYPE workq_job_oldest_pending_age_seconds gauge
workq_job_oldest_pending_age_seconds{job="thumbs"} 2
# HELP workq_job_throughput_items_per_second Items of a Job that succeeded per second, averaged over the last minute.
# TYPE workq_job_throughput_items_per_second gauge
workq_job_throughput_items_per_second{job="thumbs"} 0.016666666666666666
# HELP workq_job_info Always 1; its labels carry a Job's kind (WorkQueue, Indexed, NonIndexed) and phase.
# TYPE workq_job_info gauge
workq_job_info{job="thumbs",kind="WorkQueue",phase="Running"} 1
# HELP workq_job_start_time_seconds When a Job's first lease was handed out, in Unix seconds; absent until then.
# TYPE workq_job_start_time_seconds gauge
workq_job_start_time_seconds{job="thumbs"} 1.893553445e+09
# HELP workq_redis_up 1 when the last scrape could read the list of Jobs from Redis, 0 when it could not.
# TYPE workq_redis_up gauge
workq_redis_up 1
# HELP workq_job_read_errors Jobs whose status could not be read in this scrape (they are missing from it).
# TYPE workq_job_read_errors gauge
workq_job_read_errors 0
`, "workq_job_items", "workq_job_items_total", "workq_job_failed_attempts_total", "workq_job_lease_takeovers_total",
			"workq_job_leases", "workq_job_workers", "workq_job_worker_exits_total", "workq_job_oldest_pending_age_seconds",
			"workq_job_throughput_items_per_second", "workq_job_info", "workq_job_start_time_seconds",
			"workq_job_completion_time_seconds", "workq_redis_up", "workq_job_read_errors")
	})

	t.Run("ExportsEveryJobOnce", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t)
		create(t, s, "a", jobstate.Spec{})
		create(t, s, "b", jobstate.Spec{Completions: jobstate.Ptr(4)})
		create(t, s, "c", jobstate.Spec{Completions: jobstate.Ptr(2), CompletionMode: jobstate.CompletionNonIndexed})

		compare(t, newRegistry(s), `
# HELP workq_job_info Always 1; its labels carry a Job's kind (WorkQueue, Indexed, NonIndexed) and phase.
# TYPE workq_job_info gauge
workq_job_info{job="a",kind="WorkQueue",phase="Pending"} 1
workq_job_info{job="b",kind="Indexed",phase="Pending"} 1
workq_job_info{job="c",kind="NonIndexed",phase="Pending"} 1
# HELP workq_job_items_total Items a Job knows of: every item pushed so far, or the completions of an Indexed Job.
# TYPE workq_job_items_total counter
workq_job_items_total{job="a"} 0
workq_job_items_total{job="b"} 4
workq_job_items_total{job="c"} 2
`, "workq_job_info", "workq_job_items_total")
	})

	t.Run("NoJobsExportsOnlyRedisUp", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t)
		reg := newRegistry(s)
		n, err := testutil.GatherAndCount(reg, "workq_job_info", "workq_job_items")
		require.NoError(t, err)
		require.Zero(t, n)
		compare(t, reg, `
# HELP workq_redis_up 1 when the last scrape could read the list of Jobs from Redis, 0 when it could not.
# TYPE workq_redis_up gauge
workq_redis_up 1
`, "workq_redis_up")
	})

	t.Run("RedisDownExportsRedisUpZeroWithoutFailingTheScrape", func(t *testing.T) {
		t.Parallel()
		s, m := setup(t)
		create(t, s, "thumbs", jobstate.Spec{})
		m.Close()
		reg := newRegistry(s)
		compare(t, reg, `
# HELP workq_redis_up 1 when the last scrape could read the list of Jobs from Redis, 0 when it could not.
# TYPE workq_redis_up gauge
workq_redis_up 0
`, "workq_redis_up")
		n, err := testutil.GatherAndCount(reg, "workq_job_info")
		require.NoError(t, err)
		require.Zero(t, n)
	})

	t.Run("AFailingJobReadLeavesOutOnlyThatJob", func(t *testing.T) {
		t.Parallel()
		src := fakeSource{
			names:  []string{"bad", "good"},
			status: map[string]jobstate.Status{"good": {Name: "good", Kind: jobstate.KindWorkQueue, Phase: jobstate.PhaseRunning}},
			errs:   map[string]error{"bad": errors.New("status of \"bad\": bad spec")},
		}
		compare(t, newRegistry(src), `
# HELP workq_job_info Always 1; its labels carry a Job's kind (WorkQueue, Indexed, NonIndexed) and phase.
# TYPE workq_job_info gauge
workq_job_info{job="good",kind="WorkQueue",phase="Running"} 1
# HELP workq_job_read_errors Jobs whose status could not be read in this scrape (they are missing from it).
# TYPE workq_job_read_errors gauge
workq_job_read_errors 1
# HELP workq_redis_up 1 when the last scrape could read the list of Jobs from Redis, 0 when it could not.
# TYPE workq_redis_up gauge
workq_redis_up 1
`, "workq_job_info", "workq_job_read_errors", "workq_redis_up")
	})

	t.Run("AJobDeletedDuringTheScrapeIsNotAnError", func(t *testing.T) {
		t.Parallel()
		src := fakeSource{names: []string{"gone"}, errs: map[string]error{"gone": fmt.Errorf("status of %q: %w", "gone", store.ErrNoJob)}}
		compare(t, newRegistry(src), `
# HELP workq_job_read_errors Jobs whose status could not be read in this scrape (they are missing from it).
# TYPE workq_job_read_errors gauge
workq_job_read_errors 0
`, "workq_job_read_errors")
	})

	t.Run("ExportsStartAndCompletionTimesOfAFinishedJob", func(t *testing.T) {
		t.Parallel()
		start, end := t0, t0.Add(90*time.Second+500*time.Millisecond)
		src := fakeSource{names: []string{"done"}, status: map[string]jobstate.Status{"done": {
			Name: "done", Kind: jobstate.KindIndexed, Phase: jobstate.PhaseComplete, StartTime: &start, CompletionTime: &end,
			Succeeded: 2, Failed: 1}}}
		compare(t, newRegistry(src), `
# HELP workq_job_start_time_seconds When a Job's first lease was handed out, in Unix seconds; absent until then.
# TYPE workq_job_start_time_seconds gauge
workq_job_start_time_seconds{job="done"} 1.893553445e+09
# HELP workq_job_completion_time_seconds When a Job became Complete or Failed, in Unix seconds; absent until then.
# TYPE workq_job_completion_time_seconds gauge
workq_job_completion_time_seconds{job="done"} 1.8935535355e+09
# HELP workq_job_worker_exits_total Workers of a Job that ended, by outcome: succeeded (exited 0) or failed (crashed, lost or exited non-zero).
# TYPE workq_job_worker_exits_total counter
workq_job_worker_exits_total{job="done",outcome="failed"} 1
workq_job_worker_exits_total{job="done",outcome="succeeded"} 2
# HELP workq_job_info Always 1; its labels carry a Job's kind (WorkQueue, Indexed, NonIndexed) and phase.
# TYPE workq_job_info gauge
workq_job_info{job="done",kind="Indexed",phase="Complete"} 1
`, "workq_job_start_time_seconds", "workq_job_completion_time_seconds", "workq_job_worker_exits_total", "workq_job_info")
	})

	t.Run("PassesTheMetricLinter", func(t *testing.T) {
		t.Parallel()
		src := fakeSource{names: []string{"x"}, status: map[string]jobstate.Status{"x": {Name: "x", Kind: jobstate.KindWorkQueue, Phase: jobstate.PhasePending}}}
		problems, err := testutil.CollectAndLint(jobmetrics.NewCollector(src, quiet))
		require.NoError(t, err)
		require.Empty(t, problems)
	})
}
