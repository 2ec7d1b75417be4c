package dashboard_test

import (
	"context"
	"fmt"
	"image"
	"image/png"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/controller"
	"github.com/workq/workq/internal/poller"
	"github.com/workq/workq/internal/redistest"
	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/internal/web"
	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

const (
	jobName  = "thumbnails"
	items    = 480
	itemTime = 60 * time.Millisecond
	// Every failEvery-th item fails on each attempt, so the Job gets dead
	// items with their errors.
	failEvery = 48
	// The last heldBack items run only once the test has seen the Job run.
	heldBack = 4
)

// chromium finds Debian's Chromium, or skips (fails with
// WORKQ_REQUIRE_CHROMIUM=1) when it is not installed.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("WORKQ_REQUIRE_CHROMIUM") == "1" {
		t.Fatal("chromium is not installed and WORKQ_REQUIRE_CHROMIUM=1: install it with `apt-get install -y chromium`")
	}
	t.Skip("chromium is not installed: `apt-get install -y chromium` to run the dashboard browser test")
	return ""
}

// artifacts is where screenshots are kept after the test.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("WORKQ_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "workq-dashboard")
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

// checkScreenshot decodes a PNG and checks its size and that it is not a
// blank page.
func checkScreenshot(t *testing.T, path string, viewport bool) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	if viewport {
		require.Equal(t, image.Rect(0, 0, 1280, 900), img.Bounds())
	}
	colours := map[[3]uint32]bool{}
	for y := 0; y < 900; y += 9 {
		for x := 0; x < 1280; x += 8 {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 12, g >> 12, b >> 12}] = true
		}
	}
	require.Greater(t, len(colours), 8, "%s looks blank", path)
}

// shoot saves a screenshot of the page's viewport at path, checks it and
// logs where it is.
func shoot(t *testing.T, tab *browserTab, path, what string) {
	t.Helper()
	tab.screenshot(path, false)
	checkScreenshot(t, path, true)
	t.Logf("screenshot of %s: %s", what, path)
}

func TestDashboardInABrowser(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	srv := redistest.ForTest(t)
	ctx := context.Background()
	// The workers use the public API; the dashboard and the test, the store.
	c, err := queue.Open(ctx, queue.Options{URL: srv.URL()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	s, err := store.Open(ctx, store.DialOptions{URL: srv.URL()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })

	_, err = s.Create(ctx, jobName, jobstate.Spec{BatchSize: 4, MaxAttempts: 2, Parallelism: 2,
		Lease: jobstate.Duration(5 * time.Second), RetryBackoff: jobstate.Duration(100 * time.Millisecond)})
	require.NoError(t, err)
	payloads := make([][]byte, items)
	for i := range payloads {
		payloads[i] = fmt.Appendf(nil, "s3://photos/2030/IMG_%04d.jpg", i)
	}
	n, err := s.Push(ctx, jobName, "", payloads, store.PushOptions{})
	require.NoError(t, err)
	require.EqualValues(t, items, n)
	_, err = s.Seal(ctx, jobName, "")
	require.NoError(t, err)

	// Two workers, each running two items at a time. Items take a while
	// until the test has seen the running Job; then they are quick. The
	// last few wait for that moment: the workers end the Job themselves
	// once it is drained, and the Job must still run while the test looks.
	var quick atomic.Bool
	seen := make(chan struct{})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	handler := queue.HandlerFunc(func(ctx context.Context, it queue.Item) error {
		d := itemTime + time.Duration(it.ID%5)*itemTime/2
		if quick.Load() {
			d = time.Millisecond
		}
		if it.ID >= items-heldBack {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-seen:
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
		if it.ID%failEvery == failEvery-1 {
			return fmt.Errorf("resize %s: image: unknown format <%s>", it.Payload, "HEIC")
		}
		return nil
	})
	workCtx, stopWork := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() { stopWork(); wg.Wait() })
	ended := make(chan error, 2)
	for i := range 2 {
		w, err := queue.NewWorker(c, queue.WorkerConfig{Job: jobName, ID: fmt.Sprintf("worker-%d", i),
			Concurrency: 2, Handler: handler, Logger: log, Grace: time.Second, Version: "v1.0.0-test"})
		require.NoError(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ended <- w.Run(workCtx)
		}()
	}

	// As serve does: one read of Redis per Job per second for every
	// viewer, changes straight through the store.
	shared := &poller.Poller{S: s, Every: time.Second}
	site := httptest.NewServer(web.New(shared, web.Options{Token: "demo-token", Actions: s, Logger: log}))
	t.Cleanup(site.Close)
	jobURL := site.URL + "/jobs/" + jobName
	dir := artifacts(t)
	tab := openBrowser(t, bin)
	const succeeded = `Number(document.querySelector('[data-field="items.succeeded"]').textContent.replace(/,/g, ""))`

	t.Run("TheJobPageFollowsTheRunningJobLive", func(t *testing.T) {
		tab.t = t
		tab.navigate(jobURL)
		tab.waitFor(`document.getElementById("live").textContent === "live"`)
		var first int64
		tab.eval(succeeded, &first)
		tab.waitFor(succeeded + " > " + strconv.FormatInt(first, 10))
		tab.waitFor(`Number(document.querySelector('.progress rect[data-state="succeeded"]').getAttribute("width")) > 0`)
		tab.waitFor(`document.querySelectorAll("#workers tr").length === 2`)
		var workers string
		tab.eval(`document.getElementById("workers").textContent`, &workers)
		require.Contains(t, workers, "worker-0")
		require.Contains(t, workers, "worker-1")
		require.Contains(t, workers, "v1.0.0-test")
		// The chart draws from the samples the page collected.
		tab.waitFor(`document.querySelector("#chart path.line") && Number((/(\d+) samples/.exec(document.getElementById("chart-range").textContent) || [0, 0])[1]) >= 8`)
		var phase string
		tab.eval(`document.querySelector(".head .badge").textContent`, &phase)
		require.Equal(t, "Running", phase)
		shoot(t, tab, filepath.Join(dir, "job-running.png"), "the running Job")
	})

	t.Run("TheJobsListShowsTheJob", func(t *testing.T) {
		tab.t = t
		tab.navigate(site.URL + "/")
		var html string
		tab.eval(`document.querySelector("table.jobs").outerHTML`, &html)
		require.Contains(t, html, `<a href="/jobs/thumbnails">thumbnails</a>`)
		require.Contains(t, html, `class="seg succeeded"`)
		shoot(t, tab, filepath.Join(dir, "jobs.png"), "the Jobs list")
	})

	t.Run("TheJobPageWorksWithoutJavaScript", func(t *testing.T) {
		tab.t = t
		tab.must("Emulation.setScriptExecutionDisabled", map[string]any{"value": true}, nil)
		defer tab.must("Emulation.setScriptExecutionDisabled", map[string]any{"value": false}, nil)
		tab.navigate(jobURL)
		var n int64
		tab.eval(succeeded, &n)
		require.Positive(t, n, "the server rendered the progress")
		var live bool
		tab.eval(`document.getElementById("live").hidden`, &live)
		require.True(t, live, "no script ran")
	})

	t.Run("TheFinishedJobShowsItsDeadItemsAndConditions", func(t *testing.T) {
		tab.t = t
		quick.Store(true)
		close(seen)
		// The workers end on their own once the Job is drained; with dead
		// items it fails, and so do they. Nothing else moves the Job.
		for range 2 {
			err := <-ended
			require.ErrorIs(t, err, queue.ErrJobFailed)
			require.ErrorContains(t, err, "FailedItems")
		}
		st, err := s.Status(ctx, jobName)
		require.NoError(t, err)
		require.Equal(t, jobstate.PhaseFailed, st.Phase)
		require.EqualValues(t, items, st.Items.Succeeded+st.Items.Dead)
		require.EqualValues(t, items/failEvery, st.Items.Dead)

		tab.navigate(jobURL)
		tab.waitFor(`document.getElementById("live").textContent === "live"`)
		tab.waitFor(`document.querySelector(".head .badge").textContent === "Failed"`)
		var rows int64
		tab.eval(`document.querySelectorAll("#dead tr").length`, &rows)
		require.Equal(t, st.Items.Dead, rows)
		var text, html string
		tab.eval(`document.getElementById("dead").textContent`, &text)
		tab.eval(`document.getElementById("dead").innerHTML`, &html)
		require.Contains(t, text, "unknown format <HEIC>", "error texts are shown as text")
		require.Contains(t, html, "unknown format &lt;HEIC&gt;")
		var conds string
		tab.eval(`document.getElementById("conditions").textContent`, &conds)
		require.Contains(t, conds, "FailedItems")

		shoot(t, tab, filepath.Join(dir, "job-finished.png"), "the finished Job")
		full := filepath.Join(dir, "job-finished-full.png")
		tab.screenshot(full, true)
		checkScreenshot(t, full, false)
		t.Logf("screenshot of the whole page of the finished Job: %s", full)
	})
	t.Run("RetryOnTheFinishedJobReopensIt", func(t *testing.T) {
		tab.t = t
		before, err := s.Status(ctx, jobName)
		require.NoError(t, err)
		require.Equal(t, jobstate.PhaseFailed, before.Phase)
		tab.navigate(jobURL)
		tab.waitFor(`document.getElementById("live").textContent === "live"`)
		// The token is the one serve was started with; the page asks before
		// it reopens the Job.
		var ok bool
		tab.eval(`sessionStorage.setItem("workq-token", "demo-token"); window.confirm = function (m) { window.asked = m; return true; }; true`, &ok)
		tab.waitFor(`!document.querySelector('button[data-action="retry"]').disabled`)
		tab.eval(`document.querySelector('button[data-action="retry"]').click(), true`, &ok)
		tab.waitFor(`document.getElementById("action-result").textContent === "` + strconv.FormatInt(before.Items.Dead, 10) + ` dead items back in the queue"`)
		var asked string
		tab.eval(`window.asked`, &asked)
		require.Contains(t, asked, "is Failed. Reopen it and retry its dead items?")

		st, err := s.Status(ctx, jobName)
		require.NoError(t, err)
		require.Equal(t, jobstate.PhaseRunning, st.Phase)
		require.Zero(t, st.Items.Dead)
		require.Equal(t, before.Items.Dead, st.Items.Retrying)
		tab.waitFor(`document.querySelector(".head .badge").textContent === "Running"`)
		tab.waitFor(`document.getElementById("conditions").textContent.indexOf("Reopened") >= 0`)
		shoot(t, tab, filepath.Join(dir, "job-reopened.png"), "the reopened Job")
	})

	t.Run("ItemsHandedBackShowAsPendingLive", func(t *testing.T) {
		tab.t = t
		const job = "handback"
		_, err := s.Create(ctx, job, jobstate.Spec{})
		require.NoError(t, err)
		_, err = s.Push(ctx, job, "", [][]byte{[]byte("a"), []byte("b"), []byte("c"), []byte("d")}, store.PushOptions{})
		require.NoError(t, err)
		tab.navigate(site.URL + "/jobs/" + job)
		tab.waitFor(`document.getElementById("live").textContent === "live"`)
		tab.waitFor(`document.querySelector('[data-field="items.pending"]').textContent === "4"`)

		// A worker leases three items and, told to stop, hands back two it
		// had not started. The page follows without a reload.
		reg, err := s.Register(ctx, job, "", "w1", []byte(`{"id":"w1"}`))
		require.NoError(t, err)
		r, err := s.Lease(ctx, job, store.LeaseRequest{UID: reg.UID, Session: reg.Session, Worker: "w1", Seq: 1, Want: 3, Max: 3})
		require.NoError(t, err)
		require.NotNil(t, r.Lease)
		require.Len(t, r.Lease.Items, 3)
		res, err := s.Settle(ctx, job, store.SettleRequest{UID: reg.UID, Session: reg.Session, Seq: 1, Leases: []store.Settlement{
			{Token: r.Lease.Token, Started: -1, Released: []int64{r.Lease.Items[0].ID, r.Lease.Items[1].ID}}}})
		require.NoError(t, err)
		require.Equal(t, 2, res.Released)
		tab.waitFor(`document.querySelector('[data-field="items.leased"]').textContent === "1"`)
		var pending, width string
		tab.eval(`document.querySelector('[data-field="items.pending"]').textContent`, &pending)
		tab.eval(`document.querySelector('.progress rect[data-state="pending"]').getAttribute("width")`, &width)
		require.Equal(t, "3", pending, "one pending and two handed back")
		require.Equal(t, "75.00", width, "the bar covers every item")
	})
	t.Run("ASucceedingJobCannotBeSuspended", func(t *testing.T) {
		tab.t = t
		const job = "succeeding"
		_, err := s.Create(ctx, job, jobstate.Spec{})
		require.NoError(t, err)
		_, err = s.Push(ctx, job, "", [][]byte{[]byte("a")}, store.PushOptions{})
		require.NoError(t, err)
		_, err = s.Seal(ctx, job, "")
		require.NoError(t, err)
		tab.navigate(site.URL + "/jobs/" + job)
		tab.waitFor(`document.getElementById("live").textContent === "live"`)
		tab.waitFor(`!document.querySelector('button[data-action="suspend"]').disabled`)

		// A worker drains the Job and is still live: the Job succeeds, and
		// ends Complete once the worker is gone.
		reg, err := s.Register(ctx, job, "", "w1", []byte(`{"id":"w1"}`))
		require.NoError(t, err)
		r, err := s.Lease(ctx, job, store.LeaseRequest{UID: reg.UID, Session: reg.Session, Worker: "w1", Seq: 1, Want: 1})
		require.NoError(t, err)
		require.NotNil(t, r.Lease)
		_, err = s.Settle(ctx, job, store.SettleRequest{UID: reg.UID, Session: reg.Session, Seq: 1, Leases: []store.Settlement{
			{Token: r.Lease.Token, All: true, AckCount: 1, Started: -1}}})
		require.NoError(t, err)
		_, err = s.Lease(ctx, job, store.LeaseRequest{UID: reg.UID, Session: reg.Session, Worker: "w1", Seq: 2, Want: 1})
		require.ErrorIs(t, err, store.ErrDrained)
		snap, err := (&controller.Reconciler{S: s, Log: log}).Reconcile(ctx, job)
		require.NoError(t, err)
		require.Equal(t, jobstate.PhaseSucceeding, snap.Status.Phase)

		tab.waitFor(`document.querySelector(".head .badge").textContent === "Succeeding"`)
		tab.waitFor(`document.querySelector('button[data-action="suspend"]').disabled`)
		var bg, muted string
		tab.eval(`getComputedStyle(document.querySelector(".head .badge")).backgroundColor`, &bg)
		tab.eval(`(function () { var b = document.createElement("span"); b.className = "badge"; document.body.appendChild(b);
			var c = getComputedStyle(b).backgroundColor; b.remove(); return c; })()`, &muted)
		require.NotEqual(t, muted, bg, "the Succeeding badge has a colour of its own")
	})
}
