package web

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/pkg/jobstate"
)

// Source is what the dashboard reads: *store.Store, or a poller that
// shares one read among every viewer and scrape.
type Source interface {
	// Jobs reads every Job's counters; a Job that could not be read
	// carries its error.
	Jobs(ctx context.Context) ([]store.JobStatus, error)
	// Status reads one Job; it returns an error wrapping store.ErrNoJob
	// when the Job does not exist.
	Status(ctx context.Context, job string) (jobstate.Status, error)
	// Workers lists the Job's workers that have not terminated.
	Workers(ctx context.Context, job string) ([]store.WorkerInfo, error)
	// Dead lists up to limit dead items, ordered by id.
	Dead(ctx context.Context, job string, limit int) ([]store.DeadItem, error)
	// WithGroups adds to the Jobs' statuses a row for each sharded Job,
	// the sum of its shards.
	WithGroups(ctx context.Context, all []jobstate.Status) []jobstate.Status
}

// Actions change Jobs. *store.Store satisfies it.
type Actions interface {
	// SetSuspended suspends or resumes a Job; it reports whether it changed.
	SetSuspended(ctx context.Context, job string, suspend bool) (bool, error)
	// RetryDead returns how many dead items came back; a finished Job is
	// reopened only with reopen.
	RetryDead(ctx context.Context, job string, reopen bool) (int, error)
	// Delete removes every key of the Job.
	Delete(ctx context.Context, job string) error
}

// Options configure the handler. The zero value is a read-only dashboard.
type Options struct {
	// Token, when set, enables the changing endpoints (suspend, resume,
	// retry, delete) for requests with "Authorization: Bearer <Token>".
	// Default empty: read-only.
	Token string
	// Actions carry out the changing endpoints; they stay read-only while
	// it is nil, even with a Token.
	Actions Actions
	// Logger receives errors that are not the client's fault. Default
	// slog.Default().
	Logger *slog.Logger
	// EventInterval is how often the event stream sends a status.
	// Default 1s.
	EventInterval time.Duration
	// RefreshInterval is how often the pages reload themselves when the
	// browser runs no JavaScript, and how often the Jobs list polls.
	// Default 5s.
	RefreshInterval time.Duration
}

// Limits of the handler.
const (
	// MaxBodyBytes caps a request body.
	MaxBodyBytes = 1 << 20
	// DeadLimit is how many dead items a Job's page and API show.
	DeadLimit = 100
	// MaxItemChars caps the item text shown for a dead item; the rest is cut.
	MaxItemChars = 4096
	// ReadTimeout bounds the Redis reads of one request.
	ReadTimeout = 10 * time.Second
)

// errBadQuery: a query parameter of a request has a value it cannot have.
var errBadQuery = errors.New("bad query parameter")

// readOnlyMessage answers changes on a server started without a token.
const readOnlyMessage = "read-only: start serve with --token to allow changes"

// contentSecurityPolicy allows nothing but this origin: every script, style
// and image is embedded and served here.
const contentSecurityPolicy = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

type handler struct {
	src      Source
	opts     Options
	log      *slog.Logger
	tokenSum [32]byte
	pages    *pages
	mux      *http.ServeMux
}

// New returns the dashboard and API handler, to be mounted at "/". It is
// safe for concurrent use.
func New(src Source, opts Options) http.Handler {
	opts.EventInterval = cmp.Or(opts.EventInterval, time.Second)
	opts.RefreshInterval = cmp.Or(opts.RefreshInterval, 5*time.Second)
	h := &handler{src: src, opts: opts, log: cmp.Or(opts.Logger, slog.Default()), pages: newPages()}
	h.tokenSum = sha256.Sum256([]byte(opts.Token))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.jobsPage)
	mux.HandleFunc("GET /jobs/{name}", h.jobPage)
	mux.Handle("GET /static/", http.StripPrefix("/static/", staticHandler()))
	mux.HandleFunc("/", h.notFoundPage)

	mux.Handle("/api/jobs", methods{http.MethodGet: h.apiJobs})
	mux.Handle("/api/jobs/{name}", methods{http.MethodGet: h.apiJob, http.MethodDelete: h.change(h.delete)})
	mux.Handle("/api/jobs/{name}/events", methods{http.MethodGet: h.events})
	mux.Handle("/api/jobs/{name}/suspend", methods{http.MethodPost: h.change(h.suspend)})
	mux.Handle("/api/jobs/{name}/resume", methods{http.MethodPost: h.change(h.resume)})
	mux.Handle("/api/jobs/{name}/retry", methods{http.MethodPost: h.change(h.retry)})
	mux.Handle("/api/jobs/{name}/work", methods{http.MethodGet: h.apiWork})
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no endpoint %s", r.URL.Path), "see GET /api/jobs and GET /api/jobs/{name}")
	})
	h.mux = mux
	return h
}

func (h *handler) writable() bool { return h.opts.Token != "" && h.opts.Actions != nil }

// ServeHTTP sets the security headers and the body limit, then routes.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	}
	h.mux.ServeHTTP(w, r)
}

// methods routes an API path by method and answers others with a JSON 405.
// GET also serves HEAD.
type methods map[string]http.HandlerFunc

func (m methods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	if f, ok := m[method]; ok {
		f(w, r)
		return
	}
	allow := make([]string, 0, len(m)+1)
	for k := range m {
		allow = append(allow, k)
		if k == http.MethodGet {
			allow = append(allow, http.MethodHead)
		}
	}
	slices.Sort(allow)
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed on %s", r.Method, r.URL.Path), "use "+strings.Join(allow, " or "))
}

// apiError is the body of every API error.
type apiError struct {
	Error string `json:"error"`
	Hint  string `json:"hint,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg, hint string) {
	writeJSON(w, code, apiError{Error: msg, Hint: hint})
}

// jobName reads and checks the {name} of a request's path.
func jobName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if err := jobstate.ValidateName(name); err != nil {
		return "", err
	}
	return name, nil
}

// failure is an error as the client sees it.
type failure struct {
	code int
	msg  string
	hint string
}

// classify maps an error of the Source or Actions to a status code, a
// message and a hint, and logs what is not the client's doing.
func (h *handler) classify(r *http.Request, job string, err error) failure {
	switch {
	case errors.Is(err, errBadQuery):
		return failure{http.StatusBadRequest, err.Error(), ""}
	case errors.Is(err, jobstate.ErrInvalidSpec):
		return failure{http.StatusBadRequest, err.Error(), "a Job name is a DNS label such as \"thumbs\""}
	case errors.Is(err, store.ErrNoJob):
		return failure{http.StatusNotFound, fmt.Sprintf("no job %q", job),
			fmt.Sprintf("GET /api/jobs lists the Jobs that exist; create this one with `coordinator create %s`", job)}
	case errors.Is(err, store.ErrFinished) && strings.HasSuffix(r.URL.Path, "/retry"):
		return failure{http.StatusConflict, err.Error(),
			fmt.Sprintf("POST /api/jobs/%s/retry?reopen=true reopens the finished Job and retries its dead items (as `coordinator retry --reopen`)", job)}
	case errors.Is(err, store.ErrFinished):
		return failure{http.StatusConflict, err.Error(), "a finished Job can be retried (with reopen) or deleted, not suspended or resumed"}
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		return failure{499, "request canceled", ""}
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		h.log.Warn("redis unavailable", "path", r.URL.Path, "err", err)
		return failure{http.StatusServiceUnavailable, err.Error(), "check that Redis runs and that the coordinator can reach it"}
	}
	h.log.Error("request failed", "path", r.URL.Path, "job", job, "err", err)
	return failure{http.StatusInternalServerError, "reading or changing the Job failed: " + err.Error(), "see the coordinator's log"}
}

func (h *handler) fail(w http.ResponseWriter, r *http.Request, job string, err error) {
	f := h.classify(r, job, err)
	writeError(w, f.code, f.msg, f.hint)
}

// authorize answers the request itself and returns false unless it may
// change Jobs: the server has a token, and the request carries it.
func (h *handler) authorize(w http.ResponseWriter, r *http.Request) bool {
	if !h.writable() {
		writeError(w, http.StatusForbidden, readOnlyMessage, "")
		return false
	}
	auth := r.Header.Get("Authorization")
	const scheme = "bearer "
	if len(auth) <= len(scheme) || !strings.EqualFold(auth[:len(scheme)], scheme) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="workq"`)
		writeError(w, http.StatusUnauthorized, "missing bearer token", "send the header \"Authorization: Bearer <token>\" with the token that serve was started with")
		return false
	}
	// Hashing first makes the comparison constant-time in the length too.
	got := sha256.Sum256([]byte(strings.TrimSpace(auth[len(scheme):])))
	if subtle.ConstantTimeCompare(got[:], h.tokenSum[:]) != 1 {
		writeError(w, http.StatusForbidden, "the bearer token is not valid", "use the token that serve was started with (--token)")
		return false
	}
	return true
}

// change wraps a changing endpoint: authorization, then the Job name, then
// the (ignored) body within its limit.
func (h *handler) change(f func(ctx context.Context, r *http.Request, job string) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !h.authorize(w, r) {
			return
		}
		job, err := jobName(r)
		if err != nil {
			h.fail(w, r, r.PathValue("name"), err)
			return
		}
		if _, err := drain(r); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", tooBig.Limit), "these endpoints take no body")
				return
			}
			writeError(w, http.StatusBadRequest, "could not read the request body", "")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), ReadTimeout)
		defer cancel()
		out, err := f(ctx, r, job)
		if err != nil {
			h.fail(w, r, job, err)
			return
		}
		h.log.Info("job changed from the dashboard", "job", job, "action", r.Method+" "+r.URL.Path)
		writeJSON(w, http.StatusOK, out)
	}
}

func drain(r *http.Request) (int64, error) { return io.Copy(io.Discard, r.Body) }

// changeResult is the answer of the changing endpoints.
type changeResult struct {
	Job string `json:"job"`
	// Changed is false when the Job already was in the asked state.
	Changed   *bool `json:"changed,omitempty"`
	Suspended *bool `json:"suspended,omitempty"`
	Retried   *int  `json:"retried,omitempty"`
	Deleted   bool  `json:"deleted,omitempty"`
}

func (h *handler) suspend(ctx context.Context, _ *http.Request, job string) (any, error) {
	changed, err := h.opts.Actions.SetSuspended(ctx, job, true)
	return changeResult{Job: job, Changed: &changed, Suspended: jobstate.Ptr(true)}, err
}

func (h *handler) resume(ctx context.Context, _ *http.Request, job string) (any, error) {
	changed, err := h.opts.Actions.SetSuspended(ctx, job, false)
	return changeResult{Job: job, Changed: &changed, Suspended: jobstate.Ptr(false)}, err
}

// retry puts a Job's dead items back; ?reopen=true also reopens a finished
// Job, as `coordinator retry --reopen` does.
func (h *handler) retry(ctx context.Context, r *http.Request, job string) (any, error) {
	reopen := false
	if v := r.URL.Query().Get("reopen"); v != "" {
		var err error
		if reopen, err = strconv.ParseBool(v); err != nil {
			return nil, fmt.Errorf("%w: reopen is %q; use reopen=true or reopen=false", errBadQuery, v)
		}
	}
	n, err := h.opts.Actions.RetryDead(ctx, job, reopen)
	return changeResult{Job: job, Retried: &n}, err
}

func (h *handler) delete(ctx context.Context, _ *http.Request, job string) (any, error) {
	err := h.opts.Actions.Delete(ctx, job)
	return changeResult{Job: job, Deleted: true}, err
}
