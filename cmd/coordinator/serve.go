package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/workq/workq/internal/cli"
	"github.com/workq/workq/internal/controller"
	"github.com/workq/workq/internal/jobmetrics"
	"github.com/workq/workq/internal/poller"
	"github.com/workq/workq/internal/store"
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

HTTP: the dashboard at / (a page per Job, live), read-only JSON at /api/jobs,
/api/jobs/NAME and /api/jobs/NAME/work (the work left, for autoscalers such as
KEDA), /healthz (200 when Redis answers), /livez (200 while serve runs; for
liveness probes), /metrics (Prometheus).
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
			c, err := d.redis.Dial()
			if err != nil {
				return err
			}
			defer c.Close()
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return cli.Usagef("--listen %s: %v", listen, err)
			}
			// Every viewer, event stream and scrape is answered from one
			// read of Redis per Job per second; the controller and the
			// readers share one cache of snapshots, so an idle Job costs
			// one cheap check per read.
			snaps := &store.SnapshotCache{S: c}
			shared := &poller.Poller{S: c, Every: time.Second, Cache: snaps}
			reg := prometheus.NewRegistry()
			reg.MustRegister(jobmetrics.NewCollector(shared, log), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			mux := http.NewServeMux()
			web.Operational(mux, reg, c.Ping)
			// The dashboard and its JSON API; changes over HTTP only with --token.
			mux.Handle("/", web.New(shared, web.Options{Token: token, Actions: forgetful{c, shared}, Logger: log}))
			srv := web.NewServer(listen, mux)
			loop := &controller.Loop{R: &controller.Reconciler{S: c, Log: log}, Interval: interval, Cache: snaps,
				Metrics: controller.NewMetrics(reg, snaps)}
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
			log.Info("serving", "addr", ln.Addr().String(), "redis", d.redis.Redacted(), "read_only", token == "")
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

// forgetful changes Jobs through the store and drops what the poller
// holds of them, so the next read shows the change.
type forgetful struct {
	*store.Store
	p *poller.Poller
}

func (f forgetful) SetSuspended(ctx context.Context, job string, suspend bool) (bool, error) {
	defer f.p.Forget(job)
	return f.Store.SetSuspended(ctx, job, suspend)
}

func (f forgetful) RetryDead(ctx context.Context, job string, reopen bool) (int, error) {
	defer f.p.Forget(job)
	return f.Store.RetryDead(ctx, job, reopen)
}

func (f forgetful) Delete(ctx context.Context, job string) error {
	defer f.p.Forget(job)
	return f.Store.Delete(ctx, job)
}
