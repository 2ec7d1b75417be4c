package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/spf13/cobra"

	"github.com/workq/workq/internal/cli"
	"github.com/workq/workq/internal/controller"
	"github.com/workq/workq/internal/progress"
	"github.com/workq/workq/internal/store"
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
	results     int
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
  seq 1 100000 | coordinator run -p 8 -- sh -c 'read n; echo $((n*n))'
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
	f.IntVar(&rf.results, "results", 0, "keep each item's exit status and the end of its stdout in the Job's results stream, up to this many (see `coordinator results`; with the embedded Redis they go when run ends)")
	f.BoolVar(&sf.suspend, "suspend", false, "create the Job suspended (it runs after `coordinator resume NAME` on the same --redis)")
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
		// The second and a random suffix: two runs started together on
		// one Redis never pick the same name.
		rf.job = "run-" + time.Now().Format("20060102-150405") + "-" + strings.ToLower(rand.Text()[:4])
	}
	if err := cli.CheckName(rf.job); err != nil {
		return err
	}
	ex := &workercmd.Exec{Argv: argv}
	if err := ex.Check(); err != nil {
		return cli.UsageError{Err: err}
	}
	indexed := spec.Counted()
	if indexed && (pf.file != "" || len(itemArgs) > 0) {
		return cli.Usagef("--completions makes the items (0..K-1); do not give items too")
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
	uid, err := c.Create(ctx, rf.job, spec)
	if errors.Is(err, store.ErrExists) {
		return fmt.Errorf("%w; give run another name with --job NAME", err)
	}
	if err != nil {
		return err
	}
	if !spec.Counted() {
		pushed := *pf
		pushed.seal = true
		quiet := d
		quiet.stdout = io.Discard
		if err := pushed.push(cmd, quiet, c, rf.job, src); err != nil {
			return err
		}
	}
	log := slog.New(slog.NewTextHandler(d.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	bar := progress.New(d.stderr, -1, rf.job)
	var mu sync.Mutex
	wo := workercmd.Defaults()
	wo.Job, wo.Concurrency, wo.Grace, wo.Timeout, wo.BatchExec = rf.job, rf.concurrency, rf.grace, rf.timeout, rf.batchExec
	wo.Wait, wo.Framed, wo.LogLevel, wo.Results = 30*time.Second, true, "warn", rf.results
	env := []string{"WORKQ_REDIS_URL=" + url}
	if d.redis.CA != "" {
		env = append(env, "WORKQ_REDIS_CA="+d.redis.CA)
	}
	ctl := &runController{
		c: c, job: rf.job, uid: uid, spec: spec, grace: rf.grace, log: log, bar: bar,
		r: &controller.Reconciler{S: c, Log: log},
		launch: &processLauncher{self: self, argv: argv, opts: wo, env: env, mu: &mu,
			out: aboveBar{bar: bar, w: d.stdout}, err: bar},
	}
	begin := time.Now()
	res, err := ctl.run(ctx)
	bar.Finish()
	if err != nil {
		return err
	}
	s := res.status
	fmt.Fprintln(d.stderr, summaryLine(s, time.Since(begin)))
	showDead(context.WithoutCancel(ctx), c, d.stderr, rf.job, s)
	switch {
	case res.interrupted && !s.Phase.Finished():
		left := s.Items.Total - s.Items.Succeeded - s.Items.Dead
		return fmt.Errorf("%w: %d of %d items left undone (%d pending, %d handed back, %d retrying, %d leased); job %s was not finished",
			errInterrupted, left, s.Items.Total, s.Items.Pending, s.Items.Returned, s.Items.Retrying, s.Items.Leased, rf.job)
	case s.Phase == jobstate.PhaseFailed:
		return fmt.Errorf("job %s failed: %s", rf.job, failureOf(s))
	}
	return nil
}

// aboveBar writes item output to w (stdout) with the progress bar (on
// stderr) cleared first, so the two never mix on a terminal; the bar comes
// back at its next refresh.
type aboveBar struct {
	bar *progress.Bar
	w   io.Writer
}

func (a aboveBar) Write(p []byte) (int, error) {
	a.bar.Clear()
	return a.w.Write(p)
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

func summaryLine(s jobstate.Status, wall time.Duration) string {
	it := s.Items
	rate := float64(it.Succeeded) / max(wall.Seconds(), 1e-9)
	retried := it.FailedAttempts - it.Dead
	return fmt.Sprintf("%s: %d/%d items succeeded, %d retried, %d dead, in %s (%.0f items/s)",
		s.Phase, it.Succeeded, it.Total, max(retried, 0), it.Dead, wall.Round(time.Millisecond), rate)
}

// showDead lists the first dead items: with the embedded Redis they are
// gone once run ends, so `coordinator dead` could not show them later.
func showDead(ctx context.Context, c *store.Store, w io.Writer, job string, s jobstate.Status) {
	if s.Items.Dead == 0 {
		return
	}
	dead, err := c.Dead(ctx, job, 10)
	if err != nil {
		return
	}
	fmt.Fprintf(w, "dead items (%d):\n", s.Items.Dead)
	t := newTable(w)
	t.row("  ID", "ATTEMPTS", "ITEM", "LAST ERROR")
	for _, it := range dead {
		t.row("  "+it.Ref(), fmt.Sprint(it.Attempts), clip(strconv.Quote(it.Item), 40), clip(oneLine(it.LastError), 100))
	}
	t.flush()
	if s.Items.Dead > int64(len(dead)) {
		fmt.Fprintf(w, "  ... and %d more\n", s.Items.Dead-int64(len(dead)))
	}
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
