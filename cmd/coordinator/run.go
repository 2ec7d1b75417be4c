package main

import (
	"cmp"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/spf13/cobra"

	"github.com/workq/workq/internal/cli"
	"github.com/workq/workq/internal/controller"
	"github.com/workq/workq/internal/progress"
	"github.com/workq/workq/internal/workercmd"
	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

// runFlags are run's own flags, beside the spec and item flags.
type runFlags struct {
	job         string
	concurrency int
	timeout     time.Duration
	grace       time.Duration
	batchExec   bool
}

func newRunCmd(d deps) *cobra.Command {
	var sf specFlags
	var pf pushFlags
	var rf runFlags
	cmd := &cobra.Command{
		Use:   "run [flags] [-f FILE | --completions K] -- COMMAND [ARG...]",
		Short: "Run a whole parallel Job on this machine in one command",
		Long: `Run a whole parallel Job here: create it, load its items (-f FILE, or stdin
when it is a pipe, or --completions K for an Indexed Job), seal it, and start
--parallelism real worker processes that run COMMAND per item, as
` + "`worker`" + ` does. run is the Job controller meanwhile, as Kubernetes is for a
Job: it replaces a worker that fails, counting failures against
--backoff-limit; once a worker has exited 0 it starts no new one; the Job is
Complete once a worker succeeded and all have terminated.

Without --redis (or WORKQ_REDIS_URL), run starts an embedded Redis-compatible
server on a free loopback port for its own life; with --redis the Job stays
there when run ends (set --ttl-after-finished to have it removed).

Item output is written whole, never interleaved; progress goes to stderr,
with a summary at the end. Ctrl-C stops the workers gracefully and says what
was left undone. Exit 0 when the Job is Complete, 1 when it Failed or was
stopped, 2 for bad usage or input.`,
		Example: `  coordinator run -p 4 -f examples/words.txt -- sh examples/wordlen.sh
  seq 1 100000 | coordinator run -p 8 --batch-size 100 -- sh -c 'read n; echo $((n*n))'
  coordinator run --completions 10 -p 3 -- ./train-shard`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			var items, argv []string
			if dash < 0 {
				argv = args
			} else {
				items, argv = args[:dash], args[dash:]
			}
			return runJob(cmd, d, &sf, &pf, rf, items, argv)
		},
	}
	sf.add(cmd.Flags(), runtime.NumCPU())
	pf.add(cmd.Flags(), true)
	f := cmd.Flags()
	f.StringVar(&rf.job, "job", "", "the Job's name (default run-<time>)")
	f.IntVarP(&rf.concurrency, "concurrency", "c", 1, "items each worker runs at once")
	f.DurationVar(&rf.timeout, "timeout", 0, "kill an item's process group after this long and fail the item; 0 is no limit")
	f.DurationVar(&rf.grace, "grace", queue.DefaultGrace, "on Ctrl-C, how long running items may finish")
	f.BoolVar(&rf.batchExec, "batch-exec", false, "run COMMAND once per leased batch, the items on its stdin one per line")
	return cmd
}

func runJob(cmd *cobra.Command, d deps, sf *specFlags, pf *pushFlags, rf runFlags, itemArgs, argv []string) error {
	ctx := cmd.Context()
	spec, err := sf.spec()
	if err != nil {
		return err
	}
	if spec.Parallelism < 1 {
		return cli.Usagef("--parallelism (%d) must be at least 1 for run", spec.Parallelism)
	}
	if err := pf.validate(); err != nil {
		return err
	}
	if rf.concurrency < 1 {
		return cli.Usagef("--concurrency (%d) must be at least 1", rf.concurrency)
	}
	if rf.job == "" {
		rf.job = "run-" + time.Now().Format("20060102-150405")
	}
	if err := cli.CheckName(rf.job); err != nil {
		return err
	}
	ex := &workercmd.Exec{Argv: argv}
	if err := ex.Check(); err != nil {
		return cli.UsageError{Err: err}
	}
	indexed := spec.Completions != nil
	if indexed && (pf.file != "" || len(itemArgs) > 0) {
		return cli.Usagef("--completions makes the items (the indexes 0..K-1); do not give items too")
	}
	if !indexed && pf.file == "" && len(itemArgs) == 0 {
		if progress.IsTerminal(d.stdin) || d.stdin == nil {
			return cli.Usagef("no items: give -f FILE, pipe them on stdin, or use --completions K")
		}
		pf.file = "-"
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this program to start workers: %w", err)
	}
	// Read and check every item before anything starts.
	src, err := pf.source(ctx, d, itemArgs)
	if err != nil {
		return err
	}
	defer src.Close()
	if !indexed && src.empty() {
		return cli.Usagef("the input holds no items")
	}

	url := d.redis.URL
	explicit := cmd.Flags().Changed("redis") || os.Getenv("WORKQ_REDIS_URL") != ""
	if !explicit {
		m, murl, err := startEmbeddedRedis(os.Getenv("WORKQ_REDIS_PASSWORD"))
		if err != nil {
			return err
		}
		defer m.Close()
		url = murl
		d.redis.URL = url
	}
	c, err := d.open(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Create(ctx, rf.job, spec); err != nil {
		return err
	}
	if !indexed {
		pushed := *pf
		pushed.seal = true
		quiet := d
		quiet.stdout = discardWriter{}
		if err := pushed.push(cmd, quiet, c, rf.job, src); err != nil {
			return err
		}
	}
	log := slog.New(slog.NewTextHandler(d.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctl := &runController{
		c: c, job: rf.job, spec: spec, self: self, argv: argv, url: url, rf: rf, d: d, log: log,
		r: &controller.Reconciler{C: c, Log: log},
	}
	return ctl.run(ctx)
}

// startEmbeddedRedis starts the server run uses without --redis, on a free
// loopback port, and returns its URL. It requires a password, so that other
// local users cannot reach the Job through that port: a random one, or
// envPassword (WORKQ_REDIS_PASSWORD) when set, since run's client and its
// workers send that one whatever the URL says. The URL holds the password;
// it goes to the workers through their environment, never their arguments.
func startEmbeddedRedis(envPassword string) (*miniredis.Miniredis, string, error) {
	password := cmp.Or(envPassword, rand.Text())
	m := miniredis.NewMiniRedis()
	m.RequireAuth(password)
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, "", fmt.Errorf("start the embedded Redis: %w", err)
	}
	u := url.URL{Scheme: "redis", User: url.UserPassword("", password), Host: m.Addr(), Path: "/0"}
	return m, u.String(), nil
}

type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// workerArgs builds the command line of one worker process.
func (r *runController) workerArgs(id string) []string {
	a := []string{"worker", "--job", r.job, "--id", id, "--concurrency", fmt.Sprint(r.rf.concurrency),
		"--grace", r.rf.grace.String(), "--wait", "30s", "--framed-output", "--log-level", "warn"}
	if r.rf.timeout > 0 {
		a = append(a, "--timeout", r.rf.timeout.String())
	}
	if r.rf.batchExec {
		a = append(a, "--batch-exec")
	}
	return append(append(a, "--"), r.argv...)
}

func summaryLine(s jobstate.Status, wall time.Duration) string {
	it := s.Items
	rate := float64(it.Succeeded) / max(wall.Seconds(), 1e-9)
	retried := it.FailedAttempts - it.Dead
	return fmt.Sprintf("%s: %d/%d items succeeded, %d retried, %d dead, in %s (%.0f items/s)",
		s.Phase, it.Succeeded, it.Total, max(retried, 0), it.Dead, wall.Round(time.Millisecond), rate)
}

func failureOf(s jobstate.Status) string {
	for _, c := range s.Conditions {
		if c.Type == jobstate.ConditionFailed || c.Type == jobstate.ConditionFailureTarget {
			// The hints of a condition's message name commands for a
			// Redis that outlives run; the dead items were listed above.
			msg, _, _ := strings.Cut(c.Message, ";")
			return strings.TrimSpace(c.Reason + ": " + msg)
		}
	}
	return ""
}

var errInterrupted = errors.New("interrupted")
