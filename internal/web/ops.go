package web

import (
	"context"
	"io"
	"net/http"

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
	// Work is how many items workers have yet to finish: pending +
	// retrying + leased. Leased items count, so that an autoscaler does not
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
	left := st.Items.Pending + st.Items.Retrying + st.Items.Leased
	v := workView{
		Job:      st.Name,
		Sealed:   st.Sealed,
		Drained:  st.Done || (st.Sealed && left == 0),
		Phase:    st.Phase,
		Pending:  st.Items.Pending,
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

// livez answers 200 as long as the process serves HTTP. It asks Redis
// nothing, so that a Redis outage makes the coordinator unready (its
// /healthz fails) without getting it restarted in a loop.
func (h *handler) livez(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = io.WriteString(w, "ok\n")
}
