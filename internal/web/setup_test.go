package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/internal/web"
	"github.com/workq/workq/pkg/jobstate"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const token = "s3cret-token"

func TestMain(m *testing.M) {
	// Tests stop their Redis on purpose: the driver's own retries are noise.
	store.SetDriverLogger(quiet)
	os.Exit(m.Run())
}

// env is one test's Redis (a miniredis of its own) and dashboard.
type env struct {
	s   *store.Store
	m   *miniredis.Miniredis
	srv *httptest.Server
}

// setup starts a dashboard on a fresh miniredis with the options that
// options returns for its store (nil: read-only).
func setup(t *testing.T, options func(s *store.Store) web.Options) *env {
	t.Helper()
	s, m := testkit.MiniStore(t, time.Time{})
	var opts web.Options
	if options != nil {
		opts = options(s)
	}
	opts.Logger = quiet
	return &env{s: s, m: m, srv: serve(t, web.New(s, opts))}
}

func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// writable is a dashboard that allows changes with the test token.
func writable(t *testing.T) *env {
	t.Helper()
	return setup(t, func(s *store.Store) web.Options { return web.Options{Token: token, Actions: s} })
}

type reply struct {
	code   int
	header http.Header
	body   string
}

func (r reply) json(t *testing.T, v any) {
	t.Helper()
	require.Equal(t, "application/json; charset=utf-8", r.header.Get("Content-Type"), r.body)
	require.NoError(t, json.Unmarshal([]byte(r.body), v), r.body)
}

// apiError is the body of an API error.
type apiError struct {
	Error string `json:"error"`
	Hint  string `json:"hint"`
}

func (r reply) apiError(t *testing.T) apiError {
	t.Helper()
	var e apiError
	r.json(t, &e)
	require.NotEmpty(t, e.Error)
	return e
}

func do(t *testing.T, srv *httptest.Server, method, path string, body io.Reader, header ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, body)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return reply{code: res.StatusCode, header: res.Header, body: string(b)}
}

func get(t *testing.T, srv *httptest.Server, path string) reply {
	t.Helper()
	return do(t, srv, http.MethodGet, path, nil)
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// job creates a Job with items and returns its name.
func (e *env) job(t *testing.T, name string, spec jobstate.Spec, items ...string) string {
	t.Helper()
	testkit.CreateJob(t, e.s, name, spec, items...)
	return name
}

// status reads a Job straight from the store.
func (e *env) status(t *testing.T, job string) jobstate.Status {
	t.Helper()
	st, err := e.s.Status(context.Background(), job)
	require.NoError(t, err)
	return st
}

// session is a worker registered with the store, driven by hand: it
// numbers its lease and settle calls as a worker does.
type session struct {
	e        *env
	job, wid string
	reg      store.Registration
	seq, set int64
}

// worker registers worker wid on job, as host "host-<wid>", pid 42.
func (e *env) worker(t *testing.T, job, wid string) *session {
	t.Helper()
	info, err := json.Marshal(store.WorkerInfo{ID: wid, Host: "host-" + wid, PID: 42, Started: time.Now().UTC(), Version: "v-test"})
	require.NoError(t, err)
	reg, err := e.s.Register(context.Background(), job, "", wid, info)
	require.NoError(t, err)
	return &session{e: e, job: job, wid: wid, reg: reg}
}

// lease leases exactly n items.
func (w *session) lease(t *testing.T, n int) *store.Lease {
	t.Helper()
	w.seq++
	r, err := w.e.s.Lease(context.Background(), w.job, store.LeaseRequest{UID: w.reg.UID, Session: w.reg.Session,
		Worker: w.wid, Seq: w.seq, Want: n, Max: n})
	require.NoError(t, err)
	require.NotNil(t, r.Lease, "a lease, not %+v", r)
	require.Len(t, r.Lease.Items, n)
	return r.Lease
}

// drained is the worker's last lease: it finds the Job drained.
func (w *session) drained(t *testing.T) {
	t.Helper()
	w.seq++
	_, err := w.e.s.Lease(context.Background(), w.job, store.LeaseRequest{UID: w.reg.UID, Session: w.reg.Session,
		Worker: w.wid, Seq: w.seq, Want: 1})
	require.ErrorIs(t, err, store.ErrDrained)
}

// finish records how the worker ended.
func (w *session) finish(t *testing.T, outcome string) {
	t.Helper()
	recorded, err := w.e.s.Finish(context.Background(), w.job, w.reg.UID, w.wid, w.reg.Session, outcome)
	require.NoError(t, err)
	require.True(t, recorded)
}

// settle records what became of the items of l.
func (w *session) settle(t *testing.T, s store.Settlement) store.SettleResult {
	t.Helper()
	w.set++
	r, err := w.e.s.Settle(context.Background(), w.job, store.SettleRequest{UID: w.reg.UID, Session: w.reg.Session,
		Seq: w.set, Leases: []store.Settlement{s}})
	require.NoError(t, err)
	require.Zero(t, r.Refused, "the lease was still held")
	return r
}

// outcome settles a whole lease: its first ok items succeeded, the rest
// failed with errText, each using an attempt.
func outcome(l *store.Lease, ok int, errText string) store.Settlement {
	s := store.Settlement{Token: l.Token, Started: -1}
	for i, it := range l.Items {
		if i < ok {
			s.Acked = append(s.Acked, it.ID)
		} else {
			s.Failed = append(s.Failed, store.Failure{ID: it.ID, Action: store.ActionCount, Err: errText})
		}
	}
	return s
}

// work registers worker wid, leases n items and settles them: the first
// ok are acked, the rest failed with errText.
func (e *env) work(t *testing.T, job, wid string, n, ok int, errText string) *session {
	t.Helper()
	w := e.worker(t, job, wid)
	r := w.settle(t, outcome(w.lease(t, n), ok, errText))
	require.Equal(t, ok, r.Acked)
	require.Equal(t, n-ok, r.Failed)
	return w
}

// event is one server-sent event.
type event struct {
	name string
	data string
}

// readEvent reads the next event of a stream, skipping retry lines.
func readEvent(t *testing.T, r *bufio.Reader) (event, error) {
	t.Helper()
	var ev event
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return ev, err
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && ev.name != "":
			return ev, nil
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data = strings.TrimPrefix(line, "data: ")
		case line == "" || strings.HasPrefix(line, "retry: "):
		default:
			return ev, fmt.Errorf("unexpected line %q", line)
		}
	}
}

// fakeSource answers from tables; calls about an invalid Job name fail
// the test, to show that bad names never reach Redis.
type fakeSource struct {
	t       *testing.T
	names   []string
	listErr error
	status  map[string]jobstate.Status
	errs    map[string]error
}

func (f *fakeSource) Jobs(ctx context.Context) ([]store.JobStatus, error) {
	if f.listErr != nil {
		return nil, f.listErr
	}
	out := make([]store.JobStatus, len(f.names))
	for i, n := range f.names {
		st, err := f.Status(ctx, n)
		out[i] = store.JobStatus{Name: n, Status: st, Err: err}
	}
	return out, nil
}

func (f *fakeSource) Status(_ context.Context, job string) (jobstate.Status, error) {
	f.check(job)
	if err := f.errs[job]; err != nil {
		return jobstate.Status{}, err
	}
	st, ok := f.status[job]
	if !ok {
		return jobstate.Status{}, fmt.Errorf("status of %q: %w", job, store.ErrNoJob)
	}
	return st, nil
}

func (f *fakeSource) Workers(_ context.Context, job string) ([]store.WorkerInfo, error) {
	f.check(job)
	return nil, nil
}

func (f *fakeSource) Dead(_ context.Context, job string, _ int) ([]store.DeadItem, error) {
	f.check(job)
	return nil, nil
}

// WithGroups: the fake has no sharded Job.
func (f *fakeSource) WithGroups(_ context.Context, all []jobstate.Status) []jobstate.Status {
	return all
}

func (f *fakeSource) check(job string) {
	if jobstate.ValidateName(job) != nil {
		f.t.Errorf("the source was asked about the invalid name %q", job)
	}
}

// fakeActions records calls and answers with err.
type fakeActions struct {
	err   error
	calls chan string
}

func (f *fakeActions) record(s string) {
	if f.calls != nil {
		f.calls <- s
	}
}

func (f *fakeActions) SetSuspended(_ context.Context, job string, suspend bool) (bool, error) {
	if suspend {
		f.record("suspend " + job)
	} else {
		f.record("resume " + job)
	}
	return true, f.err
}

func (f *fakeActions) RetryDead(_ context.Context, job string, reopen bool) (int, error) {
	f.record(fmt.Sprintf("retry %s reopen=%t", job, reopen))
	return 0, f.err
}

func (f *fakeActions) Delete(_ context.Context, job string) error {
	f.record("delete " + job)
	return f.err
}
