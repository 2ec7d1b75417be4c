package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/pkg/jobstate"
)

// jobsView is the answer of GET /api/jobs.
type jobsView struct {
	Jobs []jobstate.Status `json:"jobs"`
	// Errors lists the Jobs that could not be read; the others are shown.
	Errors []jobError `json:"errors,omitempty"`
}

type jobError struct {
	Job   string `json:"job"`
	Error string `json:"error"`
}

// workerView is a worker with the time of its last heartbeat.
type workerView struct {
	store.WorkerInfo
	// LastHeartbeat is the heartbeat deadline less the Job's lease.
	LastHeartbeat time.Time `json:"lastHeartbeat"`
	// Expired is true when the heartbeat deadline has passed: the worker
	// is about to be counted as lost.
	Expired bool `json:"expired"`
}

// deadView is a dead item, its text cut to MaxItemChars.
type deadView struct {
	Shard         string `json:"shard,omitempty"` // a sharded Job's: ids are per shard
	ID            int64  `json:"id"`
	Attempts      int    `json:"attempts"`
	LastError     string `json:"lastError"`
	Item          string `json:"item"`
	ItemTruncated bool   `json:"itemTruncated,omitempty"`
}

// jobView is the answer of GET /api/jobs/{name} and the data of each event.
type jobView struct {
	Status  jobstate.Status `json:"status"`
	Workers []workerView    `json:"workers"`
	// Dead lists the first DeadLimit dead items. In events it is sent only
	// when the number of dead items changed (and in the first event).
	Dead []deadView `json:"dead,omitzero"`
}

// readJobs reads every Job's status; Jobs deleted meanwhile are skipped,
// Jobs that fail to read are reported beside the others.
func (h *handler) readJobs(ctx context.Context) (jobsView, error) {
	jobs, err := h.src.Jobs(ctx)
	if err != nil {
		return jobsView{}, err
	}
	v := jobsView{Jobs: make([]jobstate.Status, 0, len(jobs))}
	for _, j := range jobs {
		switch {
		case errors.Is(j.Err, store.ErrNoJob):
			continue
		case j.Err != nil:
			v.Errors = append(v.Errors, jobError{Job: j.Name, Error: j.Err.Error()})
			continue
		}
		v.Jobs = append(v.Jobs, j.Status)
	}
	v.Jobs = h.src.WithGroups(ctx, v.Jobs)
	return v, nil
}

// readJob reads a Job's status and workers, and its dead items when
// withDead.
func (h *handler) readJob(ctx context.Context, job string, withDead bool) (jobView, error) {
	st, err := h.src.Status(ctx, job)
	if err != nil {
		return jobView{}, err
	}
	ws, err := h.src.Workers(ctx, job)
	if err != nil {
		return jobView{}, err
	}
	v := jobView{Status: st, Workers: workerViews(st, ws)}
	if withDead && st.Items.Dead > 0 {
		dead, err := h.src.Dead(ctx, job, DeadLimit)
		if err != nil {
			return jobView{}, err
		}
		v.Dead = deadViews(dead)
	}
	return v, nil
}

func workerViews(st jobstate.Status, ws []store.WorkerInfo) []workerView {
	lease := st.Spec.WithDefaults().Lease.D()
	out := make([]workerView, len(ws))
	for i, w := range ws {
		out[i] = workerView{WorkerInfo: w, LastHeartbeat: w.Deadline.Add(-lease), Expired: w.Deadline.Before(st.Now)}
	}
	return out
}

func deadViews(ds []store.DeadItem) []deadView {
	out := make([]deadView, len(ds))
	for i, d := range ds {
		item, cut := truncate(d.Item, MaxItemChars)
		out[i] = deadView{Shard: d.Shard, ID: d.ID, Attempts: d.Attempts, LastError: d.LastError, Item: item, ItemTruncated: cut}
	}
	return out
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) (string, bool) {
	if len(s) <= n {
		return s, false
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n], true
}

func (h *handler) apiJobs(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), ReadTimeout)
	defer cancel()
	v, err := h.readJobs(ctx)
	if err != nil {
		h.fail(w, r, "", err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (h *handler) apiJob(w http.ResponseWriter, r *http.Request) {
	job, err := jobName(r)
	if err != nil {
		h.fail(w, r, r.PathValue("name"), err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), ReadTimeout)
	defer cancel()
	v, err := h.readJob(ctx, job, true)
	if err != nil {
		h.fail(w, r, job, err)
		return
	}
	if v.Dead == nil {
		v.Dead = []deadView{}
	}
	writeJSON(w, http.StatusOK, v)
}

// events streams a Job as server-sent events: a "status" event (a jobView)
// at once and then every EventInterval, an "error" event when a read
// fails (the stream goes on), and a last "gone" event when the Job no
// longer exists. It ends when the client goes away.
func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	job, err := jobName(r)
	if err != nil {
		h.fail(w, r, r.PathValue("name"), err)
		return
	}
	ctx := r.Context()
	// A missing Job is a plain 404, before the stream starts.
	first, err := h.readEvent(ctx, job, -1)
	if err != nil {
		h.fail(w, r, job, err)
		return
	}
	rc := http.NewResponseController(w)
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}

	send := func(event string, v any) bool {
		data, err := json.Marshal(v)
		if err != nil {
			h.log.Error("encode event", "job", job, "err", err)
			return false
		}
		// Each write has its own deadline: the server's WriteTimeout would
		// cut a long stream, and a client that stops reading must not hold
		// the handler forever.
		_ = rc.SetWriteDeadline(time.Now().Add(max(10*time.Second, 3*h.opts.EventInterval)))
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if _, err := fmt.Fprintf(w, "retry: %d\n\n", (2 * h.opts.EventInterval).Milliseconds()); err != nil {
		return
	}
	if !send("status", first) {
		return
	}
	lastDead := first.Status.Items.Dead

	tick := time.NewTicker(h.opts.EventInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		v, err := h.readEvent(ctx, job, lastDead)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, store.ErrNoJob):
			f := h.classify(r, job, err)
			send("gone", apiError{Error: f.msg, Hint: "the Job was deleted or expired"})
			return
		case err != nil:
			f := h.classify(r, job, err)
			if !send("error", apiError{Error: f.msg, Hint: f.hint}) {
				return
			}
			continue
		}
		lastDead = v.Status.Items.Dead
		if !send("status", v) {
			return
		}
	}
}

// readEvent reads a Job for one event; dead items only when their number
// differs from lastDead.
func (h *handler) readEvent(ctx context.Context, job string, lastDead int64) (jobView, error) {
	ctx, cancel := context.WithTimeout(ctx, ReadTimeout)
	defer cancel()
	v, err := h.readJob(ctx, job, false)
	if err != nil {
		return v, err
	}
	if v.Status.Items.Dead != lastDead {
		v.Dead = []deadView{}
		if v.Status.Items.Dead > 0 {
			dead, err := h.src.Dead(ctx, job, DeadLimit)
			if err != nil {
				return v, err
			}
			v.Dead = deadViews(dead)
		}
	}
	return v, nil
}
