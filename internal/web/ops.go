package web

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/workq/workq/pkg/jobstate"
)

// Endpoints for machines rather than people:
//
//	GET /api/jobs/{name}/work   the work left in one Job, for autoscalers
//	                            (KEDA's metrics-api scaler: valueLocation "work")
//	GET /livez                  200 while the process serves HTTP; never asks Redis
//
// Both are read-only and answer HEAD like GET.

// workView is the answer of GET /api/jobs/{name}/work.
type workView struct {
	Job string `json:"job"`
	// Work is how many items workers have yet to finish: pending (and
	// handed back) + retrying + leased. Leased items count, so that an autoscaler does not
	// remove the workers that hold them. It is 0 when no worker should be
	// running: the Job is drained, or its phase is Suspended, Failing,
	// Complete or Failed.
	Work int64 `json:"work"`
	// Sealed: no more items will be pushed.
	Sealed bool `json:"sealed"`
	// Drained: sealed, and nothing pending, retrying or leased (or a
	// worker already found it so and exited 0). A Job that is not sealed
	// is never drained, however empty its queue.
	Drained bool           `json:"drained"`
	Phase   jobstate.Phase `json:"phase"`
	// The counts that Work is made of, as they are, whatever the phase.
	Pending  int64 `json:"pending"`
	Retrying int64 `json:"retrying"`
	Leased   int64 `json:"leased"`
}

// newWorkView derives the work left from a Job's status.
func newWorkView(st jobstate.Status) workView {
	left := st.Items.Pending + st.Items.Returned + st.Items.Retrying + st.Items.Leased
	v := workView{
		Job:      st.Name,
		Sealed:   st.Sealed,
		Drained:  st.Done || (st.Sealed && left == 0),
		Phase:    st.Phase,
		Pending:  st.Items.Pending + st.Items.Returned,
		Retrying: st.Items.Retrying,
		Leased:   st.Items.Leased,
	}
	if !v.Drained && !st.Phase.Stopping() && st.Phase != jobstate.PhaseSuspended {
		v.Work = left
	}
	return v
}

// apiWork answers GET /api/jobs/{name}/work from one Status read. An
// unknown Job is a 404 with a JSON error, so that an autoscaler pointed at
// the wrong name reports an error instead of scaling to zero.
func (h *handler) apiWork(w http.ResponseWriter, r *http.Request) {
	job, err := jobName(r)
	if err != nil {
		h.fail(w, r, r.PathValue("name"), err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), ReadTimeout)
	defer cancel()
	st, err := h.src.Status(ctx, job)
	if err != nil {
		h.fail(w, r, job, err)
		return
	}
	writeJSON(w, http.StatusOK, newWorkView(st))
}

// Operational serves what a process of workq offers machines on its HTTP
// port, the same for serve and for a worker's --metrics-listen:
//
//	GET /metrics   Prometheus metrics of reg
//	GET /healthz   200 when ready answers nil (Redis answers), else 503
//	GET /livez     200 while the process serves HTTP; never asks Redis,
//	               so a Redis outage makes the process unready, not restarted
func Operational(mux *http.ServeMux, reg prometheus.Gatherer, ready func(context.Context) error) {
	mux.Handle("/metrics", methods{http.MethodGet: promhttp.HandlerFor(reg, promhttp.HandlerOpts{Timeout: 20 * time.Second}).ServeHTTP})
	mux.Handle("/healthz", methods{http.MethodGet: func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Cache-Control", "no-store")
		if err := ready(ctx); err != nil {
			http.Error(w, "redis unavailable", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	}})
	mux.Handle("/livez", methods{http.MethodGet: func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = io.WriteString(w, "ok\n")
	}})
}
