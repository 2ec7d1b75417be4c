package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/workq/workq/internal/cli"
	"github.com/workq/workq/internal/controller"
	"github.com/workq/workq/internal/jobmetrics"
	"github.com/workq/workq/internal/web"
)

func newServeCmd(d deps) *cobra.Command {
	var listen, token, logFormat, logLevel string
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the Job controller for every Job, with the dashboard, /metrics and /healthz",
		Long: `Run the controller for every Job: it reclaims expired leases, records workers
whose heartbeat expired as failed, and moves Jobs to Complete or Failed by
the Kubernetes Job rules. Job state lives only in Redis: stop and restart
serve at any time, or run several.

HTTP: the dashboard at / (a page per Job, live), read-only JSON at /api/jobs
and /api/jobs/NAME, /healthz (200 when Redis answers), /metrics (Prometheus).
Endpoints that change a Job (suspend, resume, retry, delete) exist only with
--token and need "Authorization: Bearer TOKEN".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval < 10*time.Millisecond {
				return cli.Usagef("--interval (%s) must be at least 10ms", interval)
			}
			log, err := cli.Logger(d.stderr, logFormat, logLevel)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			opts, err := d.redis.Options()
			if err != nil {
				return err
			}
			c, err := queueConnect(opts)
			if err != nil {
				return err
			}
			defer c.Close()
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return cli.Usagef("--listen %s: %v", listen, err)
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(jobmetrics.NewCollector(c, log), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			mux := http.NewServeMux()
			mux.Handle("/metrics", getOnly(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Timeout: 20 * time.Second})))
			mux.Handle("/healthz", getOnly(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				pctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
				defer cancel()
				if err := c.Ping(pctx); err != nil {
					http.Error(w, "redis unavailable", http.StatusServiceUnavailable)
					return
				}
				_, _ = io.WriteString(w, "ok\n")
			})))
			// The dashboard and its JSON API; changes over HTTP only with --token.
			mux.Handle("/", web.New(c, web.Options{Token: token, Actions: c, Logger: log}))
			srv := web.NewServer(listen, mux)
			loop := &controller.Loop{R: &controller.Reconciler{C: c, Log: log}, Interval: interval}
			g, gctx := errgroup.WithContext(ctx)
			g.Go(func() error { return loop.Run(gctx) })
			g.Go(func() error {
				if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
					return err
				}
				return nil
			})
			g.Go(func() error {
				<-gctx.Done()
				sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), 5*time.Second)
				defer cancel()
				return srv.Shutdown(sctx)
			})
			log.Info("serving", "addr", ln.Addr().String(), "redis", redactedURL(opts.URL), "read_only", token == "")
			return g.Wait()
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", ":8080", "HTTP address for /healthz, /metrics and the dashboard")
	f.StringVar(&token, "token", os.Getenv("WORKQ_TOKEN"), "bearer token that allows changes over HTTP (suspend, resume, retry, delete); empty keeps HTTP read-only (env WORKQ_TOKEN)")
	f.DurationVar(&interval, "interval", 500*time.Millisecond, "how often every Job is reconciled")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

// getOnly answers anything but GET and HEAD with 405, so that a POST to
// /metrics or /healthz is not taken for a dashboard page.
func getOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed: use GET", http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, r)
	})
}
