package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/internal/web"
	"github.com/workq/workq/pkg/jobstate"
)

// workReply is the answer of GET /api/jobs/{name}/work.
type workReply struct {
	Job      string         `json:"job"`
	Work     int64          `json:"work"`
	Sealed   bool           `json:"sealed"`
	Drained  bool           `json:"drained"`
	Phase    jobstate.Phase `json:"phase"`
	Pending  int64          `json:"pending"`
	Retrying int64          `json:"retrying"`
	Leased   int64          `json:"leased"`
}

func getWork(t *testing.T, e *env, job string) workReply {
	t.Helper()
	r := get(t, e.srv, "/api/jobs/"+job+"/work")
	require.Equal(t, http.StatusOK, r.code, r.body)
	require.Equal(t, "no-store", r.header.Get("Cache-Control"))
	var v workReply
	r.json(t, &v)
	return v
}

// lease registers worker wid and leases n items without settling them.
func (e *env) lease(t *testing.T, job, wid string, n int) (*session, *store.Lease) {
	t.Helper()
	w := e.worker(t, job, wid)
	return w, w.lease(t, n)
}

// refusingSource fails the test on any call.
type refusingSource struct{ t *testing.T }

func (s refusingSource) refuse(call string) error {
	s.t.Errorf("the source was asked %s", call)
	return fmt.Errorf("%s: %w", call, store.ErrUnavailable)
}

func (s refusingSource) Jobs(context.Context) ([]store.JobStatus, error) {
	return nil, s.refuse("Jobs")
}

func (s refusingSource) Status(context.Context, string) (jobstate.Status, error) {
	return jobstate.Status{}, s.refuse("Status")
}

func (s refusingSource) Workers(context.Context, string) ([]store.WorkerInfo, error) {
	return nil, s.refuse("Workers")
}

func (s refusingSource) Dead(context.Context, string, int) ([]store.DeadItem, error) {
	return nil, s.refuse("Dead")
}

func (s refusingSource) WithGroups(_ context.Context, all []jobstate.Status) []jobstate.Status {
	_ = s.refuse("WithGroups")
	return all
}

func TestWork(t *testing.T) {
	t.Parallel()

	t.Run("CountsPendingRetryingAndLeasedItems", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		items := make([]string, 10)
		for i := range items {
			items[i] = fmt.Sprintf("item-%d", i)
		}
		// A long backoff keeps the failed items in retrying.
		e.job(t, "thumbs", jobstate.Spec{RetryBackoff: jobstate.Duration(time.Hour), RetryBackoffMax: jobstate.Duration(time.Hour)}, items...)
		e.work(t, "thumbs", "w1", 4, 1, "boom") // 1 succeeded, 3 retrying
		e.lease(t, "thumbs", "w2", 2)           // 2 leased, 4 left pending

		v := getWork(t, e, "thumbs")
		require.Equal(t, workReply{Job: "thumbs", Work: 9, Phase: jobstate.PhaseRunning, Pending: 4, Retrying: 3, Leased: 2}, v,
			"work is pending + retrying + leased; the succeeded item is not work")
	})

	t.Run("CountsItemsHandedBackUnstartedAsPendingWork", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		e.job(t, "thumbs", jobstate.Spec{}, "a", "b", "c", "d", "e")
		w, l := e.lease(t, "thumbs", "w1", 3)
		// A worker told to stop hands back what it has not started.
		r := w.settle(t, store.Settlement{Token: l.Token, Started: -1, Released: []int64{l.Items[0].ID, l.Items[1].ID, l.Items[2].ID}})
		require.Equal(t, 3, r.Released)
		require.EqualValues(t, 3, e.status(t, "thumbs").Items.Returned)

		v := getWork(t, e, "thumbs")
		require.Equal(t, workReply{Job: "thumbs", Work: 5, Phase: jobstate.PhaseRunning, Pending: 5}, v,
			"returned items run next: they are work an autoscaler must see")
	})

	t.Run("AnswersWithTheFieldsThatKEDAReads", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		e.job(t, "thumbs", jobstate.Spec{}, "a", "b", "c")
		r := get(t, e.srv, "/api/jobs/thumbs/work")
		require.Equal(t, http.StatusOK, r.code)
		require.JSONEq(t, `{"job": "thumbs", "work": 3, "sealed": false, "drained": false, "phase": "Pending",
			"pending": 3, "retrying": 0, "leased": 0}`, r.body)
	})

	t.Run("AnUnsealedJobWithAnEmptyQueueIsNotDrained", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		e.job(t, "stream", jobstate.Spec{}, "a", "b")
		e.work(t, "stream", "w1", 2, 2, "")
		v := getWork(t, e, "stream")
		require.Zero(t, v.Work)
		require.False(t, v.Sealed)
		require.False(t, v.Drained, "more items may come until the Job is sealed")
		require.Equal(t, jobstate.PhaseRunning, v.Phase)
	})

	t.Run("IsZeroOnceTheJobIsSealedAndDrained", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		ctx := context.Background()
		e.job(t, "thumbs", jobstate.Spec{}, "a", "b", "c")
		sealed, err := e.s.Seal(ctx, "thumbs", "")
		require.NoError(t, err)
		require.True(t, sealed)
		v := getWork(t, e, "thumbs")
		require.EqualValues(t, 3, v.Work)
		require.True(t, v.Sealed)
		require.False(t, v.Drained)

		w, l := e.lease(t, "thumbs", "w1", 3)
		v = getWork(t, e, "thumbs")
		require.EqualValues(t, 3, v.Work, "leased items are still work: their workers must not be scaled away")
		require.EqualValues(t, 3, v.Leased)
		require.False(t, v.Drained)

		require.Equal(t, 3, w.settle(t, outcome(l, 3, "")).Acked)
		v = getWork(t, e, "thumbs")
		require.Equal(t, workReply{Job: "thumbs", Work: 0, Sealed: true, Drained: true, Phase: jobstate.PhaseRunning}, v)
	})

	t.Run("IsZeroWhileTheJobIsSuspended", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		e.job(t, "thumbs", jobstate.Spec{}, "a", "b")
		changed, err := e.s.SetSuspended(context.Background(), "thumbs", true)
		require.NoError(t, err)
		require.True(t, changed)
		v := getWork(t, e, "thumbs")
		require.Equal(t, jobstate.PhaseSuspended, v.Phase)
		require.Zero(t, v.Work, "a suspended Job hands out no leases, so it needs no workers")
		require.EqualValues(t, 2, v.Pending, "the items are still reported")

		_, err = e.s.SetSuspended(context.Background(), "thumbs", false)
		require.NoError(t, err)
		require.EqualValues(t, 2, getWork(t, e, "thumbs").Work)
	})

	t.Run("IsZeroForAnEndingOrFinishedJob", func(t *testing.T) {
		t.Parallel()
		items := jobstate.Items{Total: 10, Pending: 5, Retrying: 2, Leased: 1}
		src := &fakeSource{t: t, status: map[string]jobstate.Status{}}
		for _, p := range []jobstate.Phase{jobstate.PhaseFailing, jobstate.PhaseSucceeding, jobstate.PhaseFailed, jobstate.PhaseComplete, jobstate.PhaseRunning} {
			name := strings.ToLower(string(p))
			src.status[name] = jobstate.Status{Name: name, Phase: p, Items: items}
		}
		srv := serve(t, web.New(src, web.Options{Logger: quiet}))
		for name, want := range map[string]int64{"failing": 0, "succeeding": 0, "failed": 0, "complete": 0, "running": 8} {
			r := get(t, srv, "/api/jobs/"+name+"/work")
			require.Equal(t, http.StatusOK, r.code, name)
			var v workReply
			r.json(t, &v)
			require.Equal(t, want, v.Work, name)
			require.EqualValues(t, 5, v.Pending, name)
		}
	})

	t.Run("IsZeroOnceAWorkerFoundTheJobDone", func(t *testing.T) {
		t.Parallel()
		src := &fakeSource{t: t, status: map[string]jobstate.Status{
			"thumbs": {Name: "thumbs", Phase: jobstate.PhaseRunning, Sealed: true, Done: true},
		}}
		srv := serve(t, web.New(src, web.Options{Logger: quiet}))
		r := get(t, srv, "/api/jobs/thumbs/work")
		require.Equal(t, http.StatusOK, r.code)
		var v workReply
		r.json(t, &v)
		require.True(t, v.Drained)
		require.Zero(t, v.Work)
	})

	t.Run("UnknownJobIs404WithAJSONError", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		r := get(t, e.srv, "/api/jobs/nope/work")
		require.Equal(t, http.StatusNotFound, r.code)
		er := r.apiError(t)
		require.Equal(t, `no job "nope"`, er.Error)
		require.Contains(t, er.Hint, "coordinator create nope")
	})

	t.Run("InvalidJobNameIs400AndAsksNothingOfRedis", func(t *testing.T) {
		t.Parallel()
		srv := serve(t, web.New(&fakeSource{t: t}, web.Options{Logger: quiet}))
		r := get(t, srv, "/api/jobs/Bad_Name/work")
		require.Equal(t, http.StatusBadRequest, r.code)
		require.Contains(t, r.apiError(t).Error, "invalid job spec")
	})

	t.Run("RedisDownIs503", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		e.job(t, "thumbs", jobstate.Spec{}, "a")
		e.m.Close()
		r := get(t, e.srv, "/api/jobs/thumbs/work")
		require.Equal(t, http.StatusServiceUnavailable, r.code)
		require.Contains(t, r.apiError(t).Hint, "Redis")
	})

	t.Run("IsReadOnly", func(t *testing.T) {
		t.Parallel()
		e := writable(t)
		e.job(t, "thumbs", jobstate.Spec{}, "a", "b")
		e.lease(t, "thumbs", "w1", 1)
		before, err := e.s.Status(context.Background(), "thumbs")
		require.NoError(t, err)
		for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
			r := do(t, e.srv, method, "/api/jobs/thumbs/work", nil, bearer(token)...)
			require.Equal(t, http.StatusMethodNotAllowed, r.code, method)
			require.Equal(t, "GET, HEAD", r.header.Get("Allow"), method)
		}
		require.EqualValues(t, 2, getWork(t, e, "thumbs").Work)
		r := do(t, e.srv, http.MethodHead, "/api/jobs/thumbs/work", nil)
		require.Equal(t, http.StatusOK, r.code)
		require.Empty(t, r.body)

		after, err := e.s.Status(context.Background(), "thumbs")
		require.NoError(t, err)
		require.Equal(t, before.Items, after.Items)
		require.Equal(t, before.Phase, after.Phase)
		require.Equal(t, before.Leases, after.Leases)
	})
}

// operational serves the dashboard with web.Operational beside it, as
// serve does; ready answers /healthz.
func operational(t *testing.T, src web.Source, reg prometheus.Gatherer, ready func(context.Context) error) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	web.Operational(mux, reg, ready)
	mux.Handle("/", web.New(src, web.Options{Logger: quiet}))
	return serve(t, mux)
}

func TestOperational(t *testing.T) {
	t.Parallel()

	t.Run("LivezAnswersWhileRedisIsDown", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		srv := operational(t, e.s, prometheus.NewRegistry(), e.s.Ping)
		e.m.Close()
		require.Equal(t, http.StatusServiceUnavailable, get(t, srv, "/api/jobs").code, "Redis is down")
		r := get(t, srv, "/livez")
		require.Equal(t, http.StatusOK, r.code)
		require.Equal(t, "ok\n", r.body)
		require.Equal(t, "no-store", r.header.Get("Cache-Control"))
		require.Equal(t, "text/plain; charset=utf-8", r.header.Get("Content-Type"))
	})

	t.Run("LivezAsksNothingOfRedisOrTheSource", func(t *testing.T) {
		t.Parallel()
		ready := func(context.Context) error {
			t.Error("/livez asked whether Redis is ready")
			return store.ErrUnavailable
		}
		srv := operational(t, refusingSource{t: t}, prometheus.NewRegistry(), ready)
		require.Equal(t, http.StatusOK, get(t, srv, "/livez").code)
		r := do(t, srv, http.MethodHead, "/livez", nil)
		require.Equal(t, http.StatusOK, r.code)
		require.Empty(t, r.body)
	})

	t.Run("HealthzFollowsRedis", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		srv := operational(t, e.s, prometheus.NewRegistry(), e.s.Ping)
		r := get(t, srv, "/healthz")
		require.Equal(t, http.StatusOK, r.code)
		require.Equal(t, "ok\n", r.body)
		require.Equal(t, "no-store", r.header.Get("Cache-Control"))

		e.m.Close()
		r = get(t, srv, "/healthz")
		require.Equal(t, http.StatusServiceUnavailable, r.code)
		require.Contains(t, r.body, "redis unavailable")
		require.Equal(t, "no-store", r.header.Get("Cache-Control"))
	})

	t.Run("HealthzGivesUpOnARedisThatDoesNotAnswer", func(t *testing.T) {
		t.Parallel()
		// ready blocks until its context ends: /healthz must answer 503 on
		// its own deadline rather than hang with Redis.
		ready := func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		}
		srv := operational(t, refusingSource{t: t}, prometheus.NewRegistry(), ready)
		require.Equal(t, http.StatusServiceUnavailable, get(t, srv, "/healthz").code)
	})

	t.Run("MetricsServesTheRegistry", func(t *testing.T) {
		t.Parallel()
		reg := prometheus.NewRegistry()
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "workq_test_things_total", Help: "Things."})
		reg.MustRegister(c)
		c.Add(3)
		srv := operational(t, refusingSource{t: t}, reg, func(context.Context) error { return nil })
		r := get(t, srv, "/metrics")
		require.Equal(t, http.StatusOK, r.code)
		require.Contains(t, r.body, "workq_test_things_total 3")
	})

	t.Run("OnlyGetAndHead", func(t *testing.T) {
		t.Parallel()
		srv := operational(t, refusingSource{t: t}, prometheus.NewRegistry(), func(context.Context) error { return nil })
		for _, path := range []string{"/livez", "/healthz", "/metrics"} {
			r := do(t, srv, http.MethodPost, path, nil)
			require.Equal(t, http.StatusMethodNotAllowed, r.code, path)
			require.Equal(t, "GET, HEAD", r.header.Get("Allow"), path)
		}
	})

	t.Run("TheDashboardAloneServesNoOperationalEndpoints", func(t *testing.T) {
		t.Parallel()
		srv := serve(t, web.New(refusingSource{t: t}, web.Options{Logger: quiet}))
		for _, path := range []string{"/livez", "/healthz", "/metrics"} {
			require.Equal(t, http.StatusNotFound, get(t, srv, path).code, "%s belongs to web.Operational", path)
		}
	})
}
