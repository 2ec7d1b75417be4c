package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/controller"
	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/internal/web"
	"github.com/workq/workq/pkg/jobstate"
)

const (
	evilError = `<script>alert("error")</script>`
	evilItem  = `<img src=x onerror=alert(1)>`
)

func TestPages(t *testing.T) {
	t.Parallel()

	t.Run("JobsListShowsEveryJobWithItsProgress", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		e.job(t, "thumbs", jobstate.Spec{}, "a", "b", "c", "d")
		e.work(t, "thumbs", "w1", 2, 2, "")
		e.job(t, "indexed", jobstate.Spec{Completions: jobstate.Ptr(8)})

		r := get(t, e.srv, "/")
		require.Equal(t, http.StatusOK, r.code)
		require.Equal(t, "text/html; charset=utf-8", r.header.Get("Content-Type"))
		require.Contains(t, r.body, `<a href="/jobs/thumbs">thumbs</a>`)
		require.Contains(t, r.body, `<a href="/jobs/indexed">indexed</a>`)
		require.Contains(t, r.body, `50% of 4 items`)
		require.Contains(t, r.body, `0% of 8 items`)
		require.Contains(t, r.body, `class="badge phase-running"`)
		require.Contains(t, r.body, `class="badge phase-pending"`)
		require.Regexp(t, `<rect class="seg succeeded" data-state="succeeded" x="0.00" y="0" width="50.00"`, r.body)
		require.Contains(t, r.body, `<meta http-equiv="refresh" content="5">`, "pages reload without JavaScript")
	})

	t.Run("EmptyJobsListTellsHowToCreateAJob", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		r := get(t, e.srv, "/")
		require.Equal(t, http.StatusOK, r.code)
		require.Contains(t, r.body, "No Jobs yet")
		require.Contains(t, r.body, "coordinator create")
	})

	t.Run("JobPageShowsProgressCountsWorkersDeadItemsConditionsAndSpec", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		e.job(t, "thumbs", jobstate.Spec{MaxAttempts: 1, BatchSize: 7}, "a", "b", evilItem, "d", "e")
		e.work(t, "thumbs", "w1", 3, 2, evilError)

		r := get(t, e.srv, "/jobs/thumbs")
		require.Equal(t, http.StatusOK, r.code)
		require.Contains(t, r.body, `<h1>thumbs</h1>`)
		require.Contains(t, r.body, `data-job="thumbs"`)
		require.Contains(t, r.body, `<span class="big" data-field="done">60%</span>`)
		require.Contains(t, r.body, `<b data-field="items.succeeded">2</b>`)
		require.Contains(t, r.body, `<b data-field="items.dead">1</b>`)
		require.Contains(t, r.body, `<b data-field="items.pending">2</b>`)
		require.Contains(t, r.body, `<td class="mono">w1</td><td>host-w1</td><td class="n">42</td>`)
		require.Contains(t, r.body, `id="chart"`)
		require.Contains(t, r.body, `&#34;batchSize&#34;: 7`, "the spec is shown")
		require.Contains(t, r.body, `loading (not sealed)`)
		require.Contains(t, r.body, "No conditions yet.")
		require.NotContains(t, r.body, `id="actions"`, "a read-only dashboard shows no buttons")

		// Item and error texts are escaped, never markup.
		require.NotContains(t, r.body, evilError)
		require.NotContains(t, r.body, evilItem)
		require.Contains(t, r.body, `<code class="item">&lt;img src=x onerror=alert(1)&gt;</code>`)
		require.Contains(t, r.body, `<pre class="err">&lt;script&gt;alert(&#34;error&#34;)&lt;/script&gt;</pre>`)
	})

	t.Run("ItemsHandedBackUnstartedCountAsPending", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		e.job(t, "thumbs", jobstate.Spec{}, "a", "b", "c", "d")
		w := e.worker(t, "thumbs", "w1")
		l := w.lease(t, 3)
		// The worker hands back two items it had not started (it was told
		// to stop); it still holds the third.
		w.settle(t, store.Settlement{Token: l.Token, Started: -1, Released: []int64{l.Items[0].ID, l.Items[1].ID}})
		st := e.status(t, "thumbs")
		require.EqualValues(t, 2, st.Items.Returned)
		require.EqualValues(t, 1, st.Items.Pending)

		for _, path := range []string{"/jobs/thumbs", "/"} {
			r := get(t, e.srv, path)
			require.Equal(t, http.StatusOK, r.code, path)
			require.Regexp(t, `<rect class="seg leased" data-state="leased" x="0.00" y="0" width="25.00"`, r.body, path)
			require.Regexp(t, `<rect class="seg pending" data-state="pending" x="25.00" y="0" width="75.00"`, r.body,
				"%s: the bar covers every item; the returned ones wait with the pending ones", path)
		}
		r := get(t, e.srv, "/jobs/thumbs")
		require.Contains(t, r.body, `<b data-field="items.pending">3</b>`)
		require.Contains(t, r.body, `<b data-field="items.leased">1</b>`)
		r = get(t, e.srv, "/")
		require.Regexp(t, `<td class="n">3</td>\s*<td class="n">1</td>`, r.body, "the Pending column counts them, then Leased")
	})

	t.Run("JobPageShowsButtonsOnlyWhenChangesAreAllowed", func(t *testing.T) {
		t.Parallel()
		e := writable(t)
		e.job(t, "thumbs", jobstate.Spec{})
		r := get(t, e.srv, "/jobs/thumbs")
		require.Equal(t, http.StatusOK, r.code)
		require.Contains(t, r.body, `data-action="suspend"`)
		require.Contains(t, r.body, `data-writable="true"`)
		require.Contains(t, r.body, `actions enabled`)
	})

	t.Run("JobPageOfAnUnknownJobIs404WithAHint", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		r := get(t, e.srv, "/jobs/nope")
		require.Equal(t, http.StatusNotFound, r.code)
		require.Contains(t, r.body, `no job &#34;nope&#34;`)
		require.Contains(t, r.body, "coordinator create nope")
	})

	t.Run("JobPageWithAnInvalidNameIs400AndAsksNothingOfRedis", func(t *testing.T) {
		t.Parallel()
		srv := serve(t, web.New(&fakeSource{t: t}, web.Options{Logger: quiet}))
		for _, name := range []string{"Bad_Name", "a..b", strings.Repeat("x", 64), "-lead"} {
			r := get(t, srv, "/jobs/"+name)
			require.Equal(t, http.StatusBadRequest, r.code, name)
			require.Contains(t, r.body, "invalid job spec", name)
			require.Contains(t, r.body, "DNS label", name)
		}
	})

	t.Run("UnknownPageIs404", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		r := get(t, e.srv, "/nothing/here")
		require.Equal(t, http.StatusNotFound, r.code)
		require.Contains(t, r.body, "no page at /nothing/here")
	})

	t.Run("PagesNeedNothingFromOtherOrigins", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		e.job(t, "thumbs", jobstate.Spec{}, "a")
		for _, path := range []string{"/", "/jobs/thumbs", "/nope"} {
			r := get(t, e.srv, path)
			refs := regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(r.body, -1)
			require.NotEmpty(t, refs)
			for _, ref := range refs {
				require.True(t, strings.HasPrefix(ref[1], "/"), "%s links to %q", path, ref[1])
			}
			for _, tag := range []string{"<style", " style=", "onclick=", "onload="} {
				require.NotContains(t, r.body, tag, "%s: inline styles and handlers break the CSP", path)
			}
			require.NotRegexp(t, `<script>`, r.body, "%s: inline scripts break the CSP", path)
		}
	})

	t.Run("AssetsAreEmbeddedAndCachedByVersion", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		page := get(t, e.srv, "/").body
		for _, asset := range []string{"app.js", "style.css", "favicon.svg"} {
			m := regexp.MustCompile(`/static/` + regexp.QuoteMeta(asset) + `\?v=[0-9a-f]+`).FindString(page)
			require.NotEmpty(t, m, asset)
			r := get(t, e.srv, m)
			require.Equal(t, http.StatusOK, r.code, asset)
			require.NotEmpty(t, r.body)
			require.Equal(t, "public, max-age=31536000, immutable", r.header.Get("Cache-Control"))
			etag := r.header.Get("ETag")
			require.NotEmpty(t, etag)
			again := do(t, e.srv, http.MethodGet, m, nil, "If-None-Match", etag)
			require.Equal(t, http.StatusNotModified, again.code)
		}
		require.Contains(t, get(t, e.srv, "/static/app.js").header.Get("Content-Type"), "javascript")
		require.Equal(t, "no-cache", get(t, e.srv, "/static/style.css").header.Get("Cache-Control"))
		require.Equal(t, http.StatusNotFound, get(t, e.srv, "/static/nope.js").code)
		require.Equal(t, http.StatusNotFound, get(t, e.srv, "/static/").code)
	})

	t.Run("RedisDownShowsA503Page", func(t *testing.T) {
		t.Parallel()
		src := &fakeSource{t: t, listErr: fmt.Errorf("list jobs: %w", store.ErrUnavailable)}
		srv := serve(t, web.New(src, web.Options{Logger: quiet}))
		r := get(t, srv, "/")
		require.Equal(t, http.StatusServiceUnavailable, r.code)
		require.Contains(t, r.body, "check that Redis runs")
	})
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	e.job(t, "thumbs", jobstate.Spec{})
	for _, path := range []string{"/", "/jobs/thumbs", "/jobs/nope", "/static/app.js", "/api/jobs", "/api/jobs/thumbs", "/api/nope", "/x"} {
		t.Run("On"+path, func(t *testing.T) {
			t.Parallel()
			r := get(t, e.srv, path)
			require.Equal(t, "nosniff", r.header.Get("X-Content-Type-Options"))
			require.Contains(t, r.header.Get("Content-Security-Policy"), "default-src 'self'")
			require.Contains(t, r.header.Get("Content-Security-Policy"), "frame-ancestors 'none'")
			require.Equal(t, "DENY", r.header.Get("X-Frame-Options"))
			require.Equal(t, "no-referrer", r.header.Get("Referrer-Policy"))
		})
	}
}

// jobView mirrors the JSON of GET /api/jobs/{name}.
type jobView struct {
	Status  jobstate.Status `json:"status"`
	Workers []struct {
		store.WorkerInfo
		LastHeartbeat time.Time `json:"lastHeartbeat"`
		Expired       bool      `json:"expired"`
	} `json:"workers"`
	Dead []struct {
		ID            int64  `json:"id"`
		Attempts      int    `json:"attempts"`
		LastError     string `json:"lastError"`
		Item          string `json:"item"`
		ItemTruncated bool   `json:"itemTruncated"`
	} `json:"dead"`
}

func TestAPI(t *testing.T) {
	t.Parallel()

	t.Run("JobsListsEveryStatus", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		e.job(t, "a", jobstate.Spec{}, "1", "2")
		e.job(t, "b", jobstate.Spec{Completions: jobstate.Ptr(3)})
		r := get(t, e.srv, "/api/jobs")
		require.Equal(t, http.StatusOK, r.code)
		require.Equal(t, "no-store", r.header.Get("Cache-Control"))
		var v struct {
			Jobs   []jobstate.Status `json:"jobs"`
			Errors []any             `json:"errors"`
		}
		r.json(t, &v)
		require.Len(t, v.Jobs, 2)
		require.Equal(t, "a", v.Jobs[0].Name)
		require.EqualValues(t, 2, v.Jobs[0].Items.Pending)
		require.Equal(t, jobstate.KindIndexed, v.Jobs[1].Kind)
		require.Empty(t, v.Errors)
	})

	t.Run("JobsWithoutAnyJobIsAnEmptyList", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		r := get(t, e.srv, "/api/jobs")
		require.Equal(t, http.StatusOK, r.code)
		require.JSONEq(t, `{"jobs": []}`, r.body)
	})

	t.Run("JobsReportsAJobThatFailsToReadBesideTheOthers", func(t *testing.T) {
		t.Parallel()
		src := &fakeSource{t: t, names: []string{"bad", "gone", "good"},
			status: map[string]jobstate.Status{"good": {Name: "good"}},
			errs:   map[string]error{"bad": errors.New("status of \"bad\": bad spec")}}
		srv := serve(t, web.New(src, web.Options{Logger: quiet}))
		r := get(t, srv, "/api/jobs")
		require.Equal(t, http.StatusOK, r.code)
		var v struct {
			Jobs   []jobstate.Status `json:"jobs"`
			Errors []struct{ Job, Error string }
		}
		r.json(t, &v)
		require.Len(t, v.Jobs, 1, "a Job deleted meanwhile is left out")
		require.Equal(t, "good", v.Jobs[0].Name)
		require.Len(t, v.Errors, 1)
		require.Equal(t, "bad", v.Errors[0].Job)
		require.Contains(t, v.Errors[0].Error, "bad spec")
	})

	t.Run("JobReturnsStatusWorkersAndTheFirst100DeadItems", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		items := make([]string, 105)
		for i := range items {
			items[i] = fmt.Sprintf("item-%03d", i)
		}
		items[0] = strings.Repeat("é", web.MaxItemChars) // 2 bytes per rune
		e.job(t, "thumbs", jobstate.Spec{MaxAttempts: 1, BatchSize: 200}, items...)
		e.work(t, "thumbs", "w1", 105, 0, "boom")

		r := get(t, e.srv, "/api/jobs/thumbs")
		require.Equal(t, http.StatusOK, r.code)
		var v jobView
		r.json(t, &v)
		require.Equal(t, "thumbs", v.Status.Name)
		require.EqualValues(t, 105, v.Status.Items.Dead)
		require.Len(t, v.Dead, web.DeadLimit)
		require.Equal(t, "boom", v.Dead[0].LastError)
		require.True(t, v.Dead[0].ItemTruncated)
		require.Len(t, v.Dead[0].Item, web.MaxItemChars, "cut on a rune boundary")
		require.Equal(t, "item-001", v.Dead[1].Item)
		require.False(t, v.Dead[1].ItemTruncated)
		require.Len(t, v.Workers, 1)
		require.Equal(t, "w1", v.Workers[0].ID)
		require.Equal(t, "host-w1", v.Workers[0].Host)
		lease := jobstate.DefaultLease
		require.Equal(t, v.Workers[0].Deadline.Add(-lease), v.Workers[0].LastHeartbeat)
		require.False(t, v.Workers[0].Expired)
	})

	t.Run("JobWithoutDeadItemsHasAnEmptyDeadList", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		e.job(t, "thumbs", jobstate.Spec{})
		r := get(t, e.srv, "/api/jobs/thumbs")
		require.Equal(t, http.StatusOK, r.code)
		require.Contains(t, r.body, `"dead": []`)
		require.Contains(t, r.body, `"workers": []`)
	})

	t.Run("UnknownJobIs404WithAHint", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		for _, path := range []string{"/api/jobs/nope", "/api/jobs/nope/events"} {
			r := get(t, e.srv, path)
			require.Equal(t, http.StatusNotFound, r.code, path)
			er := r.apiError(t)
			require.Equal(t, `no job "nope"`, er.Error)
			require.Contains(t, er.Hint, "coordinator create nope")
		}
	})

	t.Run("InvalidJobNameIs400AndAsksNothingOfRedis", func(t *testing.T) {
		t.Parallel()
		srv := serve(t, web.New(&fakeSource{t: t}, web.Options{Logger: quiet}))
		for _, path := range []string{"/api/jobs/Bad_Name", "/api/jobs/bad%2Fname", "/api/jobs/" + strings.Repeat("x", 64) + "/events"} {
			r := get(t, srv, path)
			require.Equal(t, http.StatusBadRequest, r.code, path)
			require.Contains(t, r.apiError(t).Error, "invalid job spec", path)
		}
	})

	t.Run("RedisDownIs503", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		e.job(t, "thumbs", jobstate.Spec{})
		e.m.Close()
		for _, path := range []string{"/api/jobs", "/api/jobs/thumbs"} {
			r := get(t, e.srv, path)
			require.Equal(t, http.StatusServiceUnavailable, r.code, path)
			require.Contains(t, r.apiError(t).Hint, "Redis", path)
		}
	})

	t.Run("UnknownEndpointIs404JSON", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		r := get(t, e.srv, "/api/nope")
		require.Equal(t, http.StatusNotFound, r.code)
		require.Equal(t, "no endpoint /api/nope", r.apiError(t).Error)
	})

	t.Run("WrongMethodIs405JSONNamingTheAllowedOnes", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		cases := map[string]string{
			"POST /api/jobs":                "GET, HEAD",
			"PUT /api/jobs/thumbs":          "DELETE, GET, HEAD",
			"POST /api/jobs/thumbs/events":  "GET, HEAD",
			"GET /api/jobs/thumbs/suspend":  "POST",
			"DELETE /api/jobs/thumbs/retry": "POST",
		}
		for req, allow := range cases {
			method, path, _ := strings.Cut(req, " ")
			r := do(t, e.srv, method, path, nil)
			require.Equal(t, http.StatusMethodNotAllowed, r.code, req)
			require.Equal(t, allow, r.header.Get("Allow"), req)
			require.Contains(t, r.apiError(t).Error, "not allowed", req)
		}
	})

	t.Run("HeadIsAnsweredLikeGet", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		e.job(t, "thumbs", jobstate.Spec{})
		for _, path := range []string{"/api/jobs", "/api/jobs/thumbs", "/api/jobs/thumbs/events", "/jobs/thumbs"} {
			r := do(t, e.srv, http.MethodHead, path, nil)
			require.Equal(t, http.StatusOK, r.code, path)
			require.Empty(t, r.body, path)
		}
	})
}

func TestEvents(t *testing.T) {
	t.Parallel()

	// stream opens the event stream of job and returns its reader, a
	// function that hangs up, and a channel closed when the handler ended.
	stream := func(t *testing.T, e *env, job string) (*bufio.Reader, context.CancelFunc, <-chan struct{}) {
		t.Helper()
		h := web.New(e.s, web.Options{Logger: quiet, EventInterval: 10 * time.Millisecond})
		ended := make(chan struct{})
		srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer close(ended)
			h.ServeHTTP(w, r)
		}))
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/jobs/"+job+"/events", nil)
		require.NoError(t, err)
		res, err := srv.Client().Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { _ = res.Body.Close() })
		require.Equal(t, http.StatusOK, res.StatusCode)
		require.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
		require.Equal(t, "no-store", res.Header.Get("Cache-Control"))
		return bufio.NewReader(res.Body), cancel, ended
	}
	status := func(t *testing.T, r *bufio.Reader) (jobView, map[string]json.RawMessage) {
		t.Helper()
		ev, err := readEvent(t, r)
		require.NoError(t, err)
		require.Equal(t, "status", ev.name, ev.data)
		var v jobView
		require.NoError(t, json.Unmarshal([]byte(ev.data), &v))
		var raw map[string]json.RawMessage
		require.NoError(t, json.Unmarshal([]byte(ev.data), &raw))
		return v, raw
	}

	t.Run("SendsStatusesUntilTheClientGoesAway", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		e.job(t, "thumbs", jobstate.Spec{}, "a", "b", "c")
		r, hangUp, ended := stream(t, e, "thumbs")
		first, _ := status(t, r)
		require.EqualValues(t, 3, first.Status.Items.Pending)

		e.work(t, "thumbs", "w1", 2, 2, "")
		require.Eventually(t, func() bool {
			v, _ := status(t, r)
			return v.Status.Items.Succeeded == 2 && len(v.Workers) == 1
		}, 5*time.Second, time.Millisecond, "later events show the progress")

		hangUp()
		select {
		case <-ended:
		case <-time.After(5 * time.Second):
			t.Fatal("the handler still runs after the client went away")
		}
	})

	t.Run("SendsDeadItemsOnlyWhenTheirNumberChanges", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		e.job(t, "thumbs", jobstate.Spec{MaxAttempts: 1}, "a", "b")
		r, _, _ := stream(t, e, "thumbs")
		_, raw := status(t, r)
		require.JSONEq(t, `[]`, string(raw["dead"]), "the first event has the dead list")
		_, raw = status(t, r)
		require.NotContains(t, raw, "dead", "an unchanged dead list is not sent again")

		e.work(t, "thumbs", "w1", 1, 0, "boom")
		for {
			v, raw := status(t, r)
			if _, ok := raw["dead"]; ok {
				require.Len(t, v.Dead, 1)
				require.Equal(t, "boom", v.Dead[0].LastError)
				break
			}
			require.Zero(t, v.Status.Items.Dead)
		}
	})

	t.Run("EndsWithGoneWhenTheJobIsDeleted", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		e.job(t, "thumbs", jobstate.Spec{})
		r, _, ended := stream(t, e, "thumbs")
		status(t, r)
		require.NoError(t, e.s.Delete(context.Background(), "thumbs"))
		for {
			ev, err := readEvent(t, r)
			require.NoError(t, err)
			if ev.name == "gone" {
				require.Contains(t, ev.data, `no job \"thumbs\"`)
				break
			}
			require.Equal(t, "status", ev.name)
		}
		_, err := readEvent(t, r)
		require.Error(t, err, "the stream ends after gone")
		<-ended
	})

	t.Run("ReportsRedisErrorsAndGoesOn", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		e.job(t, "thumbs", jobstate.Spec{})
		r, _, _ := stream(t, e, "thumbs")
		status(t, r)
		e.m.Close()
		ev, err := readEvent(t, r)
		for err == nil && ev.name == "status" {
			ev, err = readEvent(t, r)
		}
		require.NoError(t, err)
		require.Equal(t, "error", ev.name)
		require.Contains(t, ev.data, "Redis")
		ev, err = readEvent(t, r)
		require.NoError(t, err)
		require.Equal(t, "error", ev.name, "the stream goes on while Redis is away")
	})
}

func TestChanges(t *testing.T) {
	t.Parallel()
	changes := []struct{ method, path string }{
		{http.MethodPost, "/api/jobs/thumbs/suspend"},
		{http.MethodPost, "/api/jobs/thumbs/resume"},
		{http.MethodPost, "/api/jobs/thumbs/retry"},
		{http.MethodDelete, "/api/jobs/thumbs"},
	}

	t.Run("WithoutATokenEveryChangeIsForbidden", func(t *testing.T) {
		t.Parallel()
		acts := &fakeActions{calls: make(chan string, 10)}
		srv := serve(t, web.New(&fakeSource{t: t}, web.Options{Actions: acts, Logger: quiet}))
		for _, c := range changes {
			r := do(t, srv, c.method, c.path, nil, bearer(token)...)
			require.Equal(t, http.StatusForbidden, r.code, c.path)
			require.Equal(t, "read-only: start serve with --token to allow changes", r.apiError(t).Error)
		}
		require.Empty(t, acts.calls)
	})

	t.Run("ATokenWithoutActionsIsStillReadOnly", func(t *testing.T) {
		t.Parallel()
		srv := serve(t, web.New(&fakeSource{t: t}, web.Options{Token: token, Logger: quiet}))
		r := do(t, srv, http.MethodPost, "/api/jobs/thumbs/suspend", nil, bearer(token)...)
		require.Equal(t, http.StatusForbidden, r.code)
		require.Contains(t, r.apiError(t).Error, "read-only")
	})

	t.Run("AMissingTokenIs401", func(t *testing.T) {
		t.Parallel()
		acts := &fakeActions{calls: make(chan string, 10)}
		srv := serve(t, web.New(&fakeSource{t: t}, web.Options{Token: token, Actions: acts, Logger: quiet}))
		for _, c := range changes {
			for _, hdr := range [][]string{nil, {"Authorization", "Basic dXNlcjpwYXNz"}, {"Authorization", "Bearer "}, {"Authorization", token}} {
				r := do(t, srv, c.method, c.path, nil, hdr...)
				require.Equal(t, http.StatusUnauthorized, r.code, "%s %v", c.path, hdr)
				require.Equal(t, `Bearer realm="workq"`, r.header.Get("WWW-Authenticate"))
				require.Contains(t, r.apiError(t).Hint, "Authorization: Bearer")
			}
		}
		require.Empty(t, acts.calls)
	})

	t.Run("AWrongTokenIs403", func(t *testing.T) {
		t.Parallel()
		acts := &fakeActions{calls: make(chan string, 10)}
		srv := serve(t, web.New(&fakeSource{t: t}, web.Options{Token: token, Actions: acts, Logger: quiet}))
		for _, c := range changes {
			for _, tok := range []string{"wrong", token + "x", token[:len(token)-1], strings.ToUpper(token)} {
				r := do(t, srv, c.method, c.path, nil, bearer(tok)...)
				require.Equal(t, http.StatusForbidden, r.code, "%s %q", c.path, tok)
				require.Equal(t, "the bearer token is not valid", r.apiError(t).Error)
			}
		}
		require.Empty(t, acts.calls)
	})

	t.Run("TheRightTokenSuspendsResumesRetriesAndDeletes", func(t *testing.T) {
		t.Parallel()
		e := writable(t)
		ctx := context.Background()
		e.job(t, "thumbs", jobstate.Spec{MaxAttempts: 1}, "a", "b", "c")
		e.work(t, "thumbs", "w1", 2, 0, "boom")

		r := do(t, e.srv, http.MethodPost, "/api/jobs/thumbs/suspend", nil, bearer(token)...)
		require.Equal(t, http.StatusOK, r.code, r.body)
		require.JSONEq(t, `{"job":"thumbs","changed":true,"suspended":true}`, r.body)
		st, err := e.s.Status(ctx, "thumbs")
		require.NoError(t, err)
		require.True(t, st.Suspended)

		r = do(t, e.srv, http.MethodPost, "/api/jobs/thumbs/resume", nil, "authorization", "bearer "+token)
		require.Equal(t, http.StatusOK, r.code, "the scheme is case-insensitive: %s", r.body)
		require.JSONEq(t, `{"job":"thumbs","changed":true,"suspended":false}`, r.body)
		r = do(t, e.srv, http.MethodPost, "/api/jobs/thumbs/resume", nil, bearer(token)...)
		require.JSONEq(t, `{"job":"thumbs","changed":false,"suspended":false}`, r.body)

		r = do(t, e.srv, http.MethodPost, "/api/jobs/thumbs/retry", nil, bearer(token)...)
		require.Equal(t, http.StatusOK, r.code, r.body)
		require.JSONEq(t, `{"job":"thumbs","retried":2}`, r.body)
		st, err = e.s.Status(ctx, "thumbs")
		require.NoError(t, err)
		require.Zero(t, st.Items.Dead)
		require.EqualValues(t, 2, st.Items.Retrying)

		r = do(t, e.srv, http.MethodDelete, "/api/jobs/thumbs", nil, bearer(token)...)
		require.Equal(t, http.StatusOK, r.code, r.body)
		require.JSONEq(t, `{"job":"thumbs","deleted":true}`, r.body)
		_, err = e.s.Status(ctx, "thumbs")
		require.ErrorIs(t, err, store.ErrNoJob)
	})

	t.Run("RetryingAFinishedJobReopensItOnlyWhenAsked", func(t *testing.T) {
		t.Parallel()
		e := writable(t)
		ctx := context.Background()
		e.job(t, "thumbs", jobstate.Spec{MaxAttempts: 1}, "a", "b")
		_, err := e.s.Seal(ctx, "thumbs", "")
		require.NoError(t, err)
		w := e.work(t, "thumbs", "w1", 2, 1, "boom")
		// The drained Job with a dead item fails, as its last worker ends.
		w.drained(t)
		w.finish(t, store.OutcomeStopped)
		reconcile(t, e.s, "thumbs")
		require.Equal(t, jobstate.PhaseFailed, e.status(t, "thumbs").Phase)

		r := do(t, e.srv, http.MethodPost, "/api/jobs/thumbs/retry", nil, bearer(token)...)
		require.Equal(t, http.StatusConflict, r.code, r.body)
		er := r.apiError(t)
		require.Contains(t, er.Error, "finished")
		require.Contains(t, er.Hint, "?reopen=true", "the answer says how to retry a finished Job's dead items")
		st := e.status(t, "thumbs")
		require.Equal(t, jobstate.PhaseFailed, st.Phase, "nothing changed")
		require.EqualValues(t, 1, st.Items.Dead)

		r = do(t, e.srv, http.MethodPost, "/api/jobs/thumbs/retry?reopen=maybe", nil, bearer(token)...)
		require.Equal(t, http.StatusBadRequest, r.code, r.body)
		require.Contains(t, r.apiError(t).Error, "reopen")

		r = do(t, e.srv, http.MethodPost, "/api/jobs/thumbs/retry?reopen=true", nil, bearer(token)...)
		require.Equal(t, http.StatusOK, r.code, r.body)
		require.JSONEq(t, `{"job":"thumbs","retried":1}`, r.body)
		st = e.status(t, "thumbs")
		require.Equal(t, jobstate.PhaseRunning, st.Phase)
		require.Zero(t, st.Items.Dead)
		require.EqualValues(t, 1, st.Items.Retrying)
		require.True(t, slices.ContainsFunc(st.Conditions, func(c jobstate.Condition) bool { return c.Type == jobstate.ConditionReopened }),
			"%+v", st.Conditions)
	})

	t.Run("RetryReopensOnlyWhenTheQueryAsks", func(t *testing.T) {
		t.Parallel()
		acts := &fakeActions{calls: make(chan string, 10)}
		srv := serve(t, web.New(&fakeSource{t: t}, web.Options{Token: token, Actions: acts, Logger: quiet}))
		for query, want := range map[string]string{"": "false", "?reopen=true": "true", "?reopen=false": "false", "?reopen=1": "true"} {
			r := do(t, srv, http.MethodPost, "/api/jobs/thumbs/retry"+query, nil, bearer(token)...)
			require.Equal(t, http.StatusOK, r.code, query)
			require.Equal(t, "retry thumbs reopen="+want, <-acts.calls, query)
		}
	})

	t.Run("ChangingAnUnknownJobIs404", func(t *testing.T) {
		t.Parallel()
		e := writable(t)
		for _, c := range changes {
			r := do(t, e.srv, c.method, c.path, nil, bearer(token)...)
			require.Equal(t, http.StatusNotFound, r.code, c.path)
			require.Equal(t, `no job "thumbs"`, r.apiError(t).Error)
		}
	})

	t.Run("ChangingAFinishedJobIs409", func(t *testing.T) {
		t.Parallel()
		acts := &fakeActions{err: fmt.Errorf("suspend %q: %w", "thumbs", store.ErrFinished)}
		srv := serve(t, web.New(&fakeSource{t: t}, web.Options{Token: token, Actions: acts, Logger: quiet}))
		r := do(t, srv, http.MethodPost, "/api/jobs/thumbs/suspend", nil, bearer(token)...)
		require.Equal(t, http.StatusConflict, r.code)
		require.Contains(t, r.apiError(t).Error, "finished")
	})

	t.Run("AnInvalidNameIs400AfterTheTokenAndNeverReachesTheActions", func(t *testing.T) {
		t.Parallel()
		acts := &fakeActions{calls: make(chan string, 10)}
		srv := serve(t, web.New(&fakeSource{t: t}, web.Options{Token: token, Actions: acts, Logger: quiet}))
		r := do(t, srv, http.MethodPost, "/api/jobs/Bad_Name/suspend", nil, bearer(token)...)
		require.Equal(t, http.StatusBadRequest, r.code)
		r = do(t, srv, http.MethodDelete, "/api/jobs/Bad_Name", nil)
		require.Equal(t, http.StatusUnauthorized, r.code, "the token is checked first")
		require.Empty(t, acts.calls)
	})

	t.Run("ABodyOverOneMiBIs413", func(t *testing.T) {
		t.Parallel()
		acts := &fakeActions{calls: make(chan string, 10)}
		srv := serve(t, web.New(&fakeSource{t: t}, web.Options{Token: token, Actions: acts, Logger: quiet}))
		r := do(t, srv, http.MethodPost, "/api/jobs/thumbs/suspend", strings.NewReader(strings.Repeat("x", web.MaxBodyBytes+1)), bearer(token)...)
		require.Equal(t, http.StatusRequestEntityTooLarge, r.code)
		require.Contains(t, r.apiError(t).Error, "larger than 1048576 bytes")
		require.Empty(t, acts.calls)

		r = do(t, srv, http.MethodPost, "/api/jobs/thumbs/suspend", strings.NewReader("{}"), bearer(token)...)
		require.Equal(t, http.StatusOK, r.code, "a small body is fine")
		require.Equal(t, "suspend thumbs", <-acts.calls)
	})
}

func TestNewServer(t *testing.T) {
	t.Parallel()

	t.Run("HasTimeoutsThatSuitEventStreams", func(t *testing.T) {
		t.Parallel()
		srv := web.NewServer(":8080", http.NotFoundHandler())
		require.Equal(t, ":8080", srv.Addr)
		require.Equal(t, 5*time.Second, srv.ReadHeaderTimeout)
		require.Equal(t, 30*time.Second, srv.ReadTimeout)
		require.Zero(t, srv.WriteTimeout)
		require.Equal(t, 120*time.Second, srv.IdleTimeout)
		require.Equal(t, 64<<10, srv.MaxHeaderBytes)
	})

	t.Run("EventStreamsOutliveTheServersReadTimeout", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		e.job(t, "thumbs", jobstate.Spec{})
		srv := httptest.NewUnstartedServer(web.New(e.s, web.Options{Logger: quiet, EventInterval: 10 * time.Millisecond}))
		const readTimeout = 200 * time.Millisecond
		srv.Config.ReadTimeout = readTimeout
		srv.Start()
		t.Cleanup(srv.Close)
		res, err := srv.Client().Get(srv.URL + "/api/jobs/thumbs/events")
		require.NoError(t, err)
		defer res.Body.Close()
		r := bufio.NewReader(res.Body)
		start := time.Now()
		for time.Since(start) < 4*readTimeout {
			ev, err := readEvent(t, r)
			require.NoError(t, err, "the stream ended after %s", time.Since(start))
			require.Equal(t, "status", ev.name)
		}
	})

	t.Run("ShutdownEndsOpenEventStreams", func(t *testing.T) {
		t.Parallel()
		e := setup(t, nil)
		e.job(t, "thumbs", jobstate.Spec{})
		srv := web.NewServer("127.0.0.1:0", web.New(e.s, web.Options{Logger: quiet, EventInterval: 10 * time.Millisecond}))
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		served := make(chan error, 1)
		go func() { served <- srv.Serve(l) }()

		res, err := http.Get("http://" + l.Addr().String() + "/api/jobs/thumbs/events")
		require.NoError(t, err)
		defer res.Body.Close()
		r := bufio.NewReader(res.Body)
		_, err = readEvent(t, r)
		require.NoError(t, err)

		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, srv.Shutdown(ctx), "Shutdown does not wait for the stream's client")
		require.ErrorIs(t, <-served, http.ErrServerClosed)
		for err == nil {
			_, err = readEvent(t, r)
		}
	})
}

// reconcile moves a Job through its lifecycle as a controller does.
func reconcile(t *testing.T, s *store.Store, job string) {
	t.Helper()
	_, err := (&controller.Reconciler{S: s, Log: quiet}).Reconcile(context.Background(), job)
	require.NoError(t, err)
}

// TestAShardedJobOnTheDashboard: a sharded Job has a row of its own, the
// sum of its shards, beside theirs, and its page shows the sum, the
// workers of every shard and its dead items named by shard.
func TestAShardedJobOnTheDashboard(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	e.job(t, "big", jobstate.Spec{Shards: 2, MaxAttempts: 1}, "a", "b", "c", "d")
	e.work(t, "big-shard-0", "w1", 2, 1, "boom")
	e.work(t, "big-shard-1", "w2", 1, 1, "")

	r := get(t, e.srv, "/api/jobs")
	require.Equal(t, http.StatusOK, r.code)
	var list struct {
		Jobs []jobstate.Status `json:"jobs"`
	}
	r.json(t, &list)
	var names []string
	for _, j := range list.Jobs {
		names = append(names, j.Name)
	}
	require.Equal(t, []string{"big", "big-shard-0", "big-shard-1"}, names)
	require.EqualValues(t, 2, list.Jobs[0].Items.Succeeded)
	require.EqualValues(t, 1, list.Jobs[0].Items.Dead)
	require.EqualValues(t, 4, list.Jobs[0].Items.Total)

	r = get(t, e.srv, "/api/jobs/big")
	require.Equal(t, http.StatusOK, r.code, r.body)
	var v jobView
	r.json(t, &v)
	require.Equal(t, "big", v.Status.Name)
	require.Equal(t, 2, v.Status.Spec.Shards)
	require.EqualValues(t, 1, v.Status.Items.Pending)
	require.Len(t, v.Workers, 2)
	require.Len(t, v.Dead, 1)
	require.Equal(t, "boom", v.Dead[0].LastError)
	require.Contains(t, r.body, `"shard": "big-shard-0"`)
}
