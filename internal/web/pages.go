package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/pkg/jobstate"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

type pages struct {
	jobs, job, errorPage *template.Template
}

func newPages() *pages {
	parse := func(name string) *template.Template {
		return template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name))
	}
	return &pages{jobs: parse("jobs.html"), job: parse("job.html"), errorPage: parse("error.html")}
}

// segment is one coloured part of a progress bar, in percent of its width.
type segment struct {
	State string
	Count int64
	X, W  float64
}

// bar is a Job's progress bar: items by state, in the order they are drawn.
type bar struct {
	Segments []segment
	// Done is the share of items that succeeded or died, in percent.
	Done float64
}

func progress(it jobstate.Items) bar {
	// Items handed back unstarted wait to run next: they are drawn and
	// counted with the pending ones, as GET /api/jobs/{name}/work counts them.
	it.Pending += it.Returned
	counts := []segment{
		{State: "succeeded", Count: it.Succeeded},
		{State: "dead", Count: it.Dead},
		{State: "leased", Count: it.Leased},
		{State: "retrying", Count: it.Retrying},
		{State: "pending", Count: it.Pending},
	}
	var sum int64
	for _, s := range counts {
		sum += s.Count
	}
	total := max(it.Total, sum)
	b := bar{Segments: counts}
	if total == 0 {
		return b
	}
	x := 0.0
	for i := range b.Segments {
		w := 100 * float64(b.Segments[i].Count) / float64(total)
		b.Segments[i].X, b.Segments[i].W = x, w
		x += w
	}
	b.Done = 100 * float64(it.Succeeded+it.Dead) / float64(total)
	return b
}

type pageBase struct {
	Title    string
	Page     string // "jobs", "job" or "error"
	Job      string
	Writable bool
	Refresh  int // seconds; 0: no reload without JavaScript
}

type jobRow struct {
	jobstate.Status
	Bar bar
}

type jobsPage struct {
	pageBase
	Jobs   []jobRow
	Errors []jobError
}

type jobPage struct {
	pageBase
	jobView
	Bar           bar
	DeadTruncated bool
	SpecJSON      string
}

type errorPage struct {
	pageBase
	Code    int
	Message string
	Hint    string
}

func (h *handler) refreshSeconds() int {
	return max(1, int(h.opts.RefreshInterval.Round(time.Second)/time.Second))
}

func (h *handler) render(w http.ResponseWriter, r *http.Request, t *template.Template, code int, data any) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		h.log.Error("render page", "path", r.URL.Path, "err", err)
		http.Error(w, "internal error: the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func (h *handler) errorPage(w http.ResponseWriter, r *http.Request, f failure) {
	h.render(w, r, h.pages.errorPage, f.code, errorPage{
		pageBase: pageBase{Title: http.StatusText(f.code), Page: "error"},
		Code:     f.code, Message: f.msg, Hint: f.hint,
	})
}

func (h *handler) notFoundPage(w http.ResponseWriter, r *http.Request) {
	h.errorPage(w, r, failure{http.StatusNotFound, fmt.Sprintf("no page at %s", r.URL.Path), "the Jobs list is at /"})
}

func (h *handler) jobsPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), ReadTimeout)
	defer cancel()
	v, err := h.readJobs(ctx)
	if err != nil {
		h.errorPage(w, r, h.classify(r, "", err))
		return
	}
	p := jobsPage{pageBase: pageBase{Title: "Jobs", Page: "jobs", Writable: h.writable(), Refresh: h.refreshSeconds()}, Errors: v.Errors}
	for _, st := range v.Jobs {
		p.Jobs = append(p.Jobs, jobRow{Status: st, Bar: progress(st.Items)})
	}
	h.render(w, r, h.pages.jobs, http.StatusOK, p)
}

func (h *handler) jobPage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	job, err := jobName(r)
	if err != nil {
		h.errorPage(w, r, h.classify(r, name, err))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), ReadTimeout)
	defer cancel()
	v, err := h.readJob(ctx, job, true)
	if err != nil {
		f := h.classify(r, job, err)
		if errors.Is(err, store.ErrNoJob) {
			f.hint = fmt.Sprintf("the Jobs list at / shows the Jobs that exist; create this one with `coordinator create %s`", job)
		}
		h.errorPage(w, r, f)
		return
	}
	spec, _ := json.MarshalIndent(v.Status.Spec, "", "  ")
	h.render(w, r, h.pages.job, http.StatusOK, jobPage{
		pageBase:      pageBase{Title: job, Page: "job", Job: job, Writable: h.writable(), Refresh: h.refreshSeconds()},
		jobView:       v,
		Bar:           progress(v.Status.Items),
		DeadTruncated: v.Status.Items.Dead > int64(len(v.Dead)),
		SpecJSON:      string(spec),
	})
}

var funcs = template.FuncMap{
	"num": formatInt,
	"pct": func(f float64) string {
		if f > 0 && f < 1 {
			return "<1%"
		}
		return strconv.Itoa(int(math.Floor(f))) + "%"
	},
	"rate": formatRate,
	"eta":  func(st jobstate.Status) string { return jobstate.FormatETA(jobstate.EstimateETA(st)) },
	"secs": func(s float64) string { return formatDuration(time.Duration(s * float64(time.Second))) },
	"ago": func(t, now time.Time) string {
		if t.IsZero() {
			return "never"
		}
		d := now.Sub(t)
		if d < 0 {
			return "in " + formatDuration(-d)
		}
		return formatDuration(d) + " ago"
	},
	"since": func(start *time.Time, end *time.Time, now time.Time) string {
		if start == nil {
			return "not started"
		}
		if end != nil {
			now = *end
		}
		return formatDuration(now.Sub(*start))
	},
	"stamp": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"lower": func(s any) string { return strings.ToLower(fmt.Sprint(s)) },
	"f2":    func(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) },
	"asset": assetURL,
	"add":   func(a, b int64) int64 { return a + b },
	"plural": func(n int64, one, many string) string {
		if n == 1 {
			return one
		}
		return many
	},
}

func formatInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func formatRate(r float64) string {
	switch {
	case r == 0:
		return "0/s"
	case r < 10:
		return strconv.FormatFloat(r, 'f', 2, 64) + "/s"
	case r < 1000:
		return strconv.FormatFloat(r, 'f', 1, 64) + "/s"
	}
	return formatInt(int64(math.Round(r))) + "/s"
}

// formatDuration shows d with two units at most: "850ms", "42s", "3m05s",
// "2h10m", "3d4h".
func formatDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", d/time.Minute, (d%time.Minute)/time.Second)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", d/time.Hour, (d%time.Hour)/time.Minute)
	}
	return fmt.Sprintf("%dd%dh", d/(24*time.Hour), (d%(24*time.Hour))/time.Hour)
}

// assetVersions are short content hashes of the assets: URLs carry them so
// that a new build is never served from a stale cache.
var assetVersions = func() map[string]string {
	m := map[string]string{}
	_ = fs.WalkDir(assetFS, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assetFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		m[strings.TrimPrefix(p, "assets/")] = hex.EncodeToString(sum[:6])
		return nil
	})
	return m
}()

func assetURL(name string) string { return "/static/" + name + "?v=" + assetVersions[name] }

// staticHandler serves the embedded assets with ETags.
func staticHandler() http.Handler {
	sub, err := fs.Sub(assetFS, "assets")
	if err != nil {
		panic(err)
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, ok := assetVersions[r.URL.Path]
		if !ok {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte("no such asset\n"))
			return
		}
		w.Header().Set("ETag", `"`+v+`"`)
		if r.URL.Query().Get("v") == v {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
		}
		files.ServeHTTP(w, r)
	})
}
