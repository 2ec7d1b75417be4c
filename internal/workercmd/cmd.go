// Package workercmd is the `worker` command, shared by the worker binary and
// by `coordinator run`, which starts its workers by running its own binary.
package workercmd

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/workq/workq/internal/cli"
	"github.com/workq/workq/internal/web"
	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

// Options are the worker command's settings: its flags, or, for the
// workers `coordinator run` starts, the JSON in ConfigEnv (one type for
// both, so run never spells out a worker's flags).
type Options struct {
	Redis         cli.Redis     `json:"-"` // from --redis and the environment, never from JSON
	Job           string        `json:"job"`
	ID            string        `json:"id,omitempty"`
	Concurrency   int           `json:"concurrency"`
	BatchSize     int           `json:"batchSize,omitempty"`
	Heartbeat     time.Duration `json:"heartbeat,omitempty"`
	Timeout       time.Duration `json:"timeout,omitempty"`
	Grace         time.Duration `json:"grace"`
	Wait          time.Duration `json:"wait"`
	BatchExec     bool          `json:"batchExec,omitempty"`
	NUL           bool          `json:"null,omitempty"`
	MetricsListen string        `json:"metricsListen,omitempty"`
	LogFormat     string        `json:"logFormat"`
	LogLevel      string        `json:"logLevel"`
	Framed        bool          `json:"framed,omitempty"`
	Results       int           `json:"results,omitempty"`
	AckReplicas   int           `json:"ackReplicas,omitempty"`
	ResultKiB     int           `json:"resultKiB,omitempty"`
	// PassRedisEnv passes the worker's WORKQ_REDIS_* variables to item
	// commands (--pass-redis-env, WORKQ_PASS_REDIS_ENV). Default false.
	PassRedisEnv bool `json:"passRedisEnv,omitempty"`
}

// ConfigEnv carries a worker's Options, as JSON, from `coordinator run` to
// the worker processes it starts; flags given beside it win.
const ConfigEnv = "WORKQ_WORKER_CONFIG"

// Defaults returns the Options a worker has without flags.
func Defaults() Options {
	return Options{Concurrency: 1, Grace: queue.DefaultGrace, Wait: queue.DefaultWait, LogFormat: "text", LogLevel: "info", ResultKiB: 4}
}

// Environ returns the ConfigEnv entry that starts a worker with o.
func (o Options) Environ() (string, error) {
	b, err := json.Marshal(o)
	if err != nil {
		return "", fmt.Errorf("worker settings: %w", err)
	}
	return ConfigEnv + "=" + string(b), nil
}

// passRedisEnvVar is the environment variable behind --pass-redis-env.
const passRedisEnvVar = "WORKQ_PASS_REDIS_ENV"

// New returns the worker command. use is its name ("worker").
func New(use string, stdout, stderr io.Writer) *cobra.Command {
	o := Defaults()
	var configErr error
	if raw, ok := os.LookupEnv(ConfigEnv); ok {
		if err := json.Unmarshal([]byte(raw), &o); err != nil {
			configErr = cli.Usagef("%s holds no worker settings (%v); it is set by `coordinator run` and is not for hand use", ConfigEnv, err)
		}
	}
	passEnv, passEnvErr := envBool(passRedisEnvVar)
	passEnv = passEnv || o.PassRedisEnv
	cmd := &cobra.Command{
		Use:   use + " --job NAME [flags] -- COMMAND [ARG...]",
		Short: "Lease a Job's items in batches, run a command for each, and exit 0 when the Job is drained",
		Long: `A workq worker leases batches of a Job's items, runs COMMAND for each item
(or once per batch with --batch-exec), acks or nacks them, extends its leases
while items run, and exits 0 once the Job is sealed and drained. Start as
many workers as you like, at any time; they coordinate through Redis.

COMMAND runs without a shell. The item arrives on its stdin; an argument
holding {} has it replaced by the item, as one argument. The environment
carries WORKQ_JOB, WORKQ_ITEM_ID, WORKQ_ATTEMPT, WORKQ_WORKER_ID and
WORKQ_FENCE (larger for every later lease of the item, across re-created
Jobs of the same name: a sink that keeps the largest it saw can refuse a
stale worker's late write), plus WORKQ_INDEX and JOB_COMPLETION_INDEX for an
Indexed Job; the worker's own
Redis settings (WORKQ_REDIS_URL, WORKQ_REDIS_PASSWORD, WORKQ_REDIS_CA and
any other WORKQ_REDIS_* variable) are removed unless --pass-redis-env. Exit
status 0 acks the item; any other status fails it, with the tail of its
stderr as its error. When COMMAND exits, the processes it left running in
the background are killed. Each of stdout and stderr is kept up to 8 MiB
per item; the rest is dropped, with a note saying how much.

Leases adapt to the work: slow items are taken one per free executor (never
leased ahead, so idle peers get the next ones), many small items in big
batches; --batch-size caps them.

Exit codes: 0 the Job succeeded (drained with no dead item, or its success
policy is met); 1 the Job failed (dead items, backoff limit, deadline, a
FailJob rule, lost state), vanished or was replaced while the worker ran, or
the worker was stopped by a signal; 2 bad usage. A Kubernetes Job of workers
therefore fails when the workq Job fails.`,
		Example: `  worker --job thumbs --concurrency 4 -- ./make-thumb {}
  worker --job thumbs --batch-exec -- ./bulk-load
  WORKQ_JOB=thumbs worker -- sh -c 'convert - out/$WORKQ_ITEM_ID.png'`,
		Version: cli.BuildVersion(),
		Args:    cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if configErr != nil {
				return configErr
			}
			if passEnvErr != nil && !cmd.Flags().Changed("pass-redis-env") {
				return passEnvErr
			}
			return run(cmd.Context(), o, args, stdout, stderr)
		},
	}
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	f := cmd.Flags()
	o.Redis.AddFlags(f)
	f.StringVar(&o.Job, "job", cmp.Or(o.Job, os.Getenv("WORKQ_JOB")), "the Job to work on (env WORKQ_JOB)")
	f.StringVar(&o.ID, "id", cmp.Or(o.ID, os.Getenv("WORKQ_WORKER_ID")), "this worker's id in Redis (env WORKQ_WORKER_ID; default host-pid-random)")
	f.IntVarP(&o.Concurrency, "concurrency", "c", o.Concurrency, "items (or batches) run at once")
	f.IntVar(&o.BatchSize, "batch-size", o.BatchSize, "the most items per lease, below the Job's --batch-size; 0 takes the Job's (leases adapt below it to how long items take)")
	f.DurationVar(&o.Heartbeat, "heartbeat", o.Heartbeat, "how often leases are extended; 0 is a third of the Job's --lease; at most half of it")
	f.DurationVar(&o.Timeout, "timeout", o.Timeout, "kill an item's whole process group after this long and fail the item; 0 is no limit")
	f.DurationVar(&o.Grace, "grace", o.Grace, "on SIGTERM or SIGINT, how long running items may finish before they are stopped and handed back")
	f.DurationVar(&o.Wait, "wait", o.Wait, "how long to wait for Redis and the Job to exist before giving up")
	f.BoolVar(&o.BatchExec, "batch-exec", o.BatchExec, "run COMMAND once per leased batch, items on stdin one per line")
	f.BoolVar(&o.NUL, "null", o.NUL, "with --batch-exec, separate the items on stdin by NUL bytes instead of newlines")
	f.StringVar(&o.MetricsListen, "metrics-listen", o.MetricsListen, "serve /metrics, /healthz and /livez on this address, such as :9090; empty is off")
	f.StringVar(&o.LogFormat, "log-format", o.LogFormat, "log format: text or json")
	f.StringVar(&o.LogLevel, "log-level", o.LogLevel, "log level: debug, info, warn or error")
	f.IntVar(&o.Results, "results", o.Results, "keep each item's exit status and the end of its stdout in the Job's results stream (`coordinator results`), up to this many entries; 0 keeps none")
	f.IntVar(&o.ResultKiB, "result-kib", o.ResultKiB, "with --results, how many KiB of the end of an item's stdout to keep")
	f.IntVar(&o.AckReplicas, "ack-replicas", o.AckReplicas, "record results only once this many Redis replicas have them (WAIT, up to 1s), so a Sentinel failover loses no acks; 0 does not wait")
	f.BoolVar(&o.PassRedisEnv, "pass-redis-env", passEnv, "pass the worker's WORKQ_REDIS_* variables (URL, password, CA) on to COMMAND, which does not get them otherwise (env "+passRedisEnvVar+"=1)")
	f.BoolVar(&o.Framed, "framed-output", o.Framed, "frame item output for a parent `coordinator run`")
	_ = f.MarkHidden("framed-output")
	return cmd
}

// envBool reads a boolean environment variable: unset is false, and a
// value that is not a boolean is a usage error.
func envBool(name string) (bool, error) {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, cli.Usagef("%s (%q) is not a boolean; set it to 1 or 0, or unset it", name, v)
	}
	return b, nil
}

func (o Options) validate(args []string) error {
	switch {
	case o.Job == "":
		return cli.Usagef("no Job given; pass --job NAME or set WORKQ_JOB")
	case o.Concurrency < 1:
		return cli.Usagef("--concurrency (%d) must be at least 1; pass how many items run at once, such as --concurrency 4", o.Concurrency)
	case o.BatchSize < 0 || o.BatchSize > jobstate.MaxBatchSize:
		return cli.Usagef("--batch-size (%d) must be between 0 (the Job's) and %d", o.BatchSize, jobstate.MaxBatchSize)
	case o.Heartbeat < 0:
		return cli.Usagef("--heartbeat (%s) must not be negative; pass a duration such as 10s, or 0 for a third of the Job's lease", o.Heartbeat)
	case o.Timeout < 0:
		return cli.Usagef("--timeout (%s) must not be negative; pass a duration such as 5m, or 0 for no limit", o.Timeout)
	case o.Grace < 0:
		return cli.Usagef("--grace (%s) must not be negative; pass a duration such as 30s", o.Grace)
	case o.Wait < 0:
		return cli.Usagef("--wait (%s) must not be negative; pass a duration such as 1m", o.Wait)
	case o.NUL && !o.BatchExec:
		return cli.Usagef("--null only applies with --batch-exec; add --batch-exec, or drop --null")
	case o.LogFormat != "text" && o.LogFormat != "json":
		return cli.Usagef("log format %q: use text or json (--log-format)", o.LogFormat)
	case len(args) == 0:
		return cli.Usagef("no command given; put it after --, such as: worker --job thumbs -- ./make-thumb {}")
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return cli.Usagef("log level %q: use debug, info, warn or error (--log-level)", o.LogLevel)
	}
	if o.BatchExec && slices.ContainsFunc(args[1:], func(a string) bool { return strings.Contains(a, "{}") }) {
		return cli.Usagef("{} cannot be used with --batch-exec: a batch holds many items; drop {} and read them from stdin")
	}
	if err := jobstate.ValidateName(o.Job); err != nil {
		return cli.Usagef("--job: %w", err)
	}
	return nil
}

func run(ctx context.Context, o Options, args []string, stdout, stderr io.Writer) error {
	if err := o.validate(args); err != nil {
		return err
	}
	log, err := cli.Logger(stderr, o.LogFormat, o.LogLevel)
	if err != nil {
		return err
	}
	ropts, err := o.Redis.Options()
	if err != nil {
		return err
	}
	ex := &Exec{Argv: args, Timeout: o.Timeout, NUL: o.NUL, PassRedisEnv: o.PassRedisEnv, Log: log,
		Out: &Output{Stdout: stdout, Stderr: stderr, Framed: o.Framed}}
	if o.Results > 0 {
		ex.ResultBytes = o.ResultKiB << 10
	}
	if err := ex.Check(); err != nil {
		return cli.UsageError{Err: err}
	}
	c, err := queue.Connect(ropts)
	if err != nil {
		return cli.UsageError{Err: err}
	}
	defer c.Close()

	var metrics *queue.Metrics
	reg := prometheus.NewRegistry()
	if o.MetricsListen != "" {
		metrics = queue.NewMetrics(reg)
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	cfg := queue.WorkerConfig{Job: o.Job, ID: o.ID, Concurrency: o.Concurrency, BatchSize: o.BatchSize,
		Heartbeat: o.Heartbeat, Grace: o.Grace, Wait: o.Wait, Logger: log, Metrics: metrics, Version: cli.BuildVersion(),
		Results: o.Results, AckReplicas: o.AckReplicas}
	if o.BatchExec {
		cfg.BatchHandler = ex
	} else {
		cfg.Handler = ex
	}
	w, err := queue.NewWorker(c, cfg)
	if err != nil {
		return cli.UsageError{Err: err}
	}
	if o.Heartbeat > 0 {
		// Checked before the worker registers, so that a bad flag leaves
		// the Job untouched.
		spec, err := c.Inspector().Spec(ctx, o.Job)
		switch {
		case err == nil:
			if err := queue.CheckHeartbeat(o.Heartbeat, spec.Lease.D()); err != nil {
				return cli.Usagef("--%v; pass a shorter one, or 0 for a third of the lease", err)
			}
		case !errors.Is(err, queue.ErrNoJob) && !errors.Is(err, queue.ErrUnavailable):
			return err
		}
	}

	g, gctx := errgroup.WithContext(context.WithoutCancel(ctx))
	var srv *http.Server
	if o.MetricsListen != "" {
		ln, err := net.Listen("tcp", o.MetricsListen)
		if err != nil {
			return cli.Usagef("--metrics-listen %s: %v; give a free address such as :9090, or leave it empty", o.MetricsListen, err)
		}
		mux := http.NewServeMux()
		web.Operational(mux, reg, c.Ping)
		srv = web.NewServer(o.MetricsListen, mux)
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
		log.Info("serving metrics", "addr", ln.Addr().String())
	}
	var runErr error
	g.Go(func() error {
		defer func() {
			if srv != nil {
				sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), 2*time.Second)
				defer cancel()
				_ = srv.Shutdown(sctx)
			}
		}()
		runErr = w.Run(ctx)
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	var waited *queue.WaitError
	switch {
	case runErr == nil:
		return nil
	case errors.As(runErr, &waited):
		err := fmt.Errorf("waited %s (--wait) for job %q: %w", waited.Wait, waited.Job, waited.Err)
		if errors.Is(err, queue.ErrNoJob) {
			return cli.WithHint(err, fmt.Sprintf("`coordinator create %s` makes it, or check the name (`coordinator list`)", waited.Job))
		}
		return err
	case errors.Is(runErr, queue.ErrStopped):
		return fmt.Errorf("stopped by signal before job %q ended; unfinished items were handed back", o.Job)
	case errors.Is(runErr, queue.ErrJobFailed):
		return fmt.Errorf("%w; this worker exits non-zero so that whatever watches it sees the failure", runErr)
	}
	return runErr
}
