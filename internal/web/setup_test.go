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
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/web"
	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const token = "s3cret-token"

// env is one test's Redis (a miniredis of its own) and dashboard.
type env struct {
	c   *queue.Client
	m   *miniredis.Miniredis
	srv *httptest.Server
}

// setup starts a dashboard on a fresh miniredis with the options that
// options returns for its client (nil: read-only).
func setup(t *testing.T, options func(c *queue.Client) web.Options) *env {
	t.Helper()
	m := miniredis.RunT(t)
	c := queue.New(redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1}))
	t.Cleanup(func() { _ = c.Close() })
	var opts web.Options
	if options != nil {
		opts = options(c)
	}
	opts.Logger = quiet
	return &env{c: c, m: m, srv: serve(t, web.New(c, opts))}
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
	return setup(t, func(c *queue.Client) web.Options { return web.Options{Token: token, Actions: c} })
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
	ctx := context.Background()
	require.NoError(t, e.c.Create(ctx, name, spec))
	if len(items) > 0 {
		bs := make([][]byte, len(items))
		for i, it := range items {
			bs[i] = []byte(it)
		}
		n, err := e.c.Push(ctx, name, bs, queue.PushOptions{})
		require.NoError(t, err)
		require.EqualValues(t, len(items), n)
	}
	return name
}

// work registers worker wid, leases n items and settles them: the first
// ok are acked, the rest failed with errText.
func (e *env) work(t *testing.T, job, wid string, n, ok int, errText string) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, e.c.Register(ctx, job, queue.WorkerInfo{ID: wid, Host: "host-" + wid, PID: 42, Started: time.Now().UTC(), Version: "v-test"}))
	res, err := e.c.Lease(ctx, job, wid, n)
	require.NoError(t, err)
	require.Len(t, res.Batch.Items, n)
	s := queue.Settlement{Token: res.Batch.Token}
	for i, it := range res.Batch.Items {
		if i < ok {
			s.Acked = append(s.Acked, it.ID)
		} else {
			s.Failed = append(s.Failed, queue.Failure{ID: it.ID, Err: errText})
		}
	}
	_, err = e.c.Settle(ctx, job, []queue.Settlement{s})
	require.NoError(t, err)
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

// fakeSource answers from tables; calls to a Job named in forbid fail the
// test, to show that bad names never reach Redis.
type fakeSource struct {
	t       *testing.T
	names   []string
	listErr error
	status  map[string]jobstate.Status
	errs    map[string]error
}

func (f *fakeSource) Names(context.Context) ([]string, error) { return f.names, f.listErr }

func (f *fakeSource) Status(_ context.Context, job string) (jobstate.Status, error) {
	f.check(job)
	if err := f.errs[job]; err != nil {
		return jobstate.Status{}, err
	}
	st, ok := f.status[job]
	if !ok {
		return jobstate.Status{}, fmt.Errorf("status of %q: %w", job, queue.ErrNoJob)
	}
	return st, nil
}

func (f *fakeSource) Workers(_ context.Context, job string) ([]queue.WorkerInfo, error) {
	f.check(job)
	return nil, nil
}

func (f *fakeSource) Dead(_ context.Context, job string, _ int) ([]queue.DeadItem, error) {
	f.check(job)
	return nil, nil
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

func (f *fakeActions) Suspend(_ context.Context, job string) (bool, error) {
	f.record("suspend " + job)
	return true, f.err
}

func (f *fakeActions) Resume(_ context.Context, job string) (bool, error) {
	f.record("resume " + job)
	return true, f.err
}

func (f *fakeActions) RetryDead(_ context.Context, job string) (int, error) {
	f.record("retry " + job)
	return 0, f.err
}

func (f *fakeActions) Delete(_ context.Context, job string) error {
	f.record("delete " + job)
	return f.err
}
