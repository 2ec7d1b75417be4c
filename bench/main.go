// Command bench measures workq against the most a leased queue can do on
// the same Redis (the "ceilings") and against asynq and xargs, measures
// how leases fit heavy items, how workq holds up at 10⁷ items and 10⁴ Jobs,
// and checks the performance targets of docs/PERFORMANCE.md.
//
// Run it from the bench directory (it is a module of its own):
//
//	cd bench && go run .            # everything, 15-20 minutes on 2 cores
//	cd bench && go run . --quick    # reduced matrix and sizes, < 2 minutes
//	go -C bench run . -o json       # the same from the repository root
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == childArg {
		os.Exit(childMain())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// sections the bench can run, in order. The first five share one
// interleaved matrix of drains.
var allSections = []string{"ceiling", "workq", "binary", "asynq", "scheduling", "coordinator", "run", "volume", "rss", "latency", "scale"}

// config is the bench's flags.
type config struct {
	redisURL    string
	flushDB     bool
	runs        int
	items       int
	slowItems   int // B=1 rows and asynq
	quick       bool
	output      string
	jsonFile    string
	reportFile  string // print this JSON report instead of running
	cpuProfile  string
	only        map[string]bool
	strict      bool
	redisStats  bool
	ceilWorkers int

	ceilBatches     []int // per-item lease
	ceilBatchBatch  []int // per-batch lease, plain and fenced
	batches         []int
	workers         []int
	binaryBatches   []int
	asynqConc       []int
	coordLines      []int
	rssSizes        []int
	latencyPushes   int
	binaryProcesses int

	runItems int // items of the command-per-item rows
	runRuns  int // runs of each command-per-item row (best counts)

	volumeItems int // items of the scale row

	scaleJobs        int           // small Jobs of the scale section
	scaleCompletions int           // succeeded indexes of its big Job
	scaleDead        int           // dead indexes of its big Job
	scaleWindow      time.Duration // how long serve's CPU is measured
	scaleSamples     int           // scrapes and /api/jobs reads
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	var only, batches, workers, asynqConc string
	fs.StringVar(&c.redisURL, "redis", "", "URL of a Redis to use (its db is flushed); default: start redis-server on a free loopback port")
	fs.BoolVar(&c.flushDB, "flushdb", false, "allow flushing a --redis db that holds keys")
	fs.IntVar(&c.runs, "runs", 3, "runs of each config of the drain matrix; the table shows median, min and max")
	fs.IntVar(&c.items, "items", 200_000, "items per run")
	fs.IntVar(&c.slowItems, "slow-items", 20_000, "items per run of the configs bound by a round trip per item (B=1 rows, asynq); set it to --items for the full matrix at one size (~25 minutes)")
	fs.BoolVar(&c.quick, "quick", false, "reduced matrix for a smoke run (< 2 minutes): 1 run, 50,000 items, fewer configs, smaller scale rows")
	fs.StringVar(&c.output, "o", "table", "output: table or json")
	fs.StringVar(&c.jsonFile, "json", "", "also write the JSON report to this file")
	fs.StringVar(&c.reportFile, "report", "", "print the table (or -o json) of a JSON report written by --json, without running anything")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the workq child process of the queue.Worker B=1000 W=4 config (first run) to this file")
	fs.StringVar(&only, "only", "", "comma-separated sections to run: "+strings.Join(allSections, ","))
	fs.StringVar(&batches, "batches", "", "comma-separated batch sizes of the workq and ceiling rows (default 1,10,100,1000; --quick 100,1000)")
	fs.StringVar(&workers, "workers", "", "comma-separated worker counts of the workq rows (default 1,4,16; --quick 4)")
	fs.StringVar(&asynqConc, "asynq-concurrency", "", "comma-separated asynq Server concurrencies (default 10,50,100; --quick 100)")
	fs.BoolVar(&c.strict, "strict", false, "exit 1 when a target is missed")
	fs.BoolVar(&c.redisStats, "redis-stats", false, "print Redis commandstats per item for every workq and ceiling drain (to stderr)")
	fs.IntVar(&c.ceilWorkers, "ceiling-workers", 8, "goroutines driving the ceiling queue")
	fs.IntVar(&c.runItems, "run-items", 5000, "items of the command-per-item rows (coordinator run and xargs running `true` per item)")
	fs.IntVar(&c.runRuns, "run-runs", 3, "runs of each command-per-item row, interleaved; the best counts (--quick 1)")
	fs.IntVar(&c.volumeItems, "volume-items", 10_000_000, "items of the scale row, pushed with coordinator push and drained by worker processes (--quick 1,000,000)")
	fs.IntVar(&c.scaleJobs, "scale-jobs", 10_000, "small Jobs of the scale section (--quick 1,000)")
	fs.IntVar(&c.scaleCompletions, "scale-completions", 10_000_000, "succeeded indexes of the scale section's big Job (--quick 1,000,000)")
	fs.IntVar(&c.scaleDead, "scale-dead", 1_000_000, "dead indexes of the scale section's big Job (--quick 100,000)")
	fs.DurationVar(&c.scaleWindow, "scale-window", 10*time.Second, "how long serve's CPU is measured in the scale section (--quick 5s)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q; see -h", fs.Arg(0))
	}
	if c.output != "table" && c.output != "json" {
		return c, fmt.Errorf("-o %q: use table or json", c.output)
	}
	c.only = map[string]bool{}
	for _, s := range strings.Split(only, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !slices.Contains(allSections, s) {
			return c, fmt.Errorf("--only %q: sections are %s", s, strings.Join(allSections, ","))
		}
		c.only[s] = true
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	c.binaryProcesses = 4
	c.scaleSamples = 5
	if c.quick {
		quick := []struct {
			name string
			dst  *int
			val  int
		}{{"runs", &c.runs, 1}, {"items", &c.items, 50_000}, {"slow-items", &c.slowItems, 5_000}, {"run-runs", &c.runRuns, 1},
			{"volume-items", &c.volumeItems, 1_000_000}, {"scale-jobs", &c.scaleJobs, 1_000},
			{"scale-completions", &c.scaleCompletions, 1_000_000}, {"scale-dead", &c.scaleDead, 100_000}}
		for _, q := range quick {
			if !set[q.name] {
				*q.dst = q.val
			}
		}
		if !set["scale-window"] {
			c.scaleWindow = 5 * time.Second
		}
		c.scaleSamples = 2
		c.ceilBatches = []int{1, 100}
		c.ceilBatchBatch = []int{100, 1000}
		c.batches = []int{100, 1000}
		c.workers = []int{4}
		c.binaryBatches = []int{1000}
		c.asynqConc = []int{100}
		c.coordLines = []int{1_000_000}
		c.rssSizes = []int{10_000, 100_000}
		c.latencyPushes = 50
	} else {
		c.ceilBatches = []int{1, 10, 100, 1000}
		c.ceilBatchBatch = []int{10, 100, 1000}
		c.batches = []int{1, 10, 100, 1000}
		c.workers = []int{1, 4, 16}
		c.binaryBatches = []int{100, 1000}
		c.asynqConc = []int{10, 50, 100}
		c.coordLines = []int{1_000_000, 10_000_000}
		c.rssSizes = []int{10_000, 100_000, 1_000_000}
		c.latencyPushes = 200
	}
	for _, l := range []struct {
		flag string
		val  string
		dst  *[]int
	}{{"batches", batches, &c.batches}, {"workers", workers, &c.workers}, {"asynq-concurrency", asynqConc, &c.asynqConc}} {
		if l.val == "" {
			continue
		}
		var xs []int
		for _, f := range strings.Split(l.val, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				return c, fmt.Errorf("--%s %q: want positive integers separated by commas", l.flag, l.val)
			}
			xs = append(xs, n)
		}
		*l.dst = xs
		if l.flag == "batches" {
			c.ceilBatches = xs
			c.ceilBatchBatch = slices.DeleteFunc(slices.Clone(xs), func(n int) bool { return n < 10 })
			c.binaryBatches = slices.DeleteFunc(slices.Clone(xs), func(n int) bool { return n < 100 })
		}
	}
	switch {
	case c.runs < 1 || c.items < 1000 || c.slowItems < 1000:
		return c, fmt.Errorf("--runs (%d) must be at least 1, --items (%d) and --slow-items (%d) at least 1000", c.runs, c.items, c.slowItems)
	case c.runItems < 100 || c.runRuns < 1:
		return c, fmt.Errorf("--run-items (%d) must be at least 100 and --run-runs (%d) at least 1", c.runItems, c.runRuns)
	case c.volumeItems < 1000:
		return c, fmt.Errorf("--volume-items (%d) must be at least 1000", c.volumeItems)
	case c.scaleJobs < 1 || c.scaleCompletions < 1 || c.scaleDead < 0:
		return c, fmt.Errorf("--scale-jobs (%d) and --scale-completions (%d) must be at least 1, --scale-dead (%d) at least 0", c.scaleJobs, c.scaleCompletions, c.scaleDead)
	case c.scaleWindow < time.Second:
		return c, fmt.Errorf("--scale-window (%s) must be at least 1s: serve sweeps every 500ms", c.scaleWindow)
	}
	return c, nil
}

func (c config) want(section string) bool { return len(c.only) == 0 || c.only[section] }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}
	if cfg.reportFile != "" {
		return printReport(cfg, stdout, stderr)
	}
	env, err := startRedis(ctx, cfg.redisURL, cfg.flushDB)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	defer env.close()
	tmp, err := tempDir()
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	b, err := newBench(ctx, cfg, env, tmp, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	defer b.close()
	rep := b.runAll(ctx)
	rep.Command = "cd bench && go run . " + strings.Join(args, " ")
	if cfg.jsonFile != "" {
		f, err := os.Create(cfg.jsonFile)
		if err == nil {
			err = rep.writeJSON(f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
	}
	if cfg.output == "json" {
		if err := rep.writeJSON(stdout); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
	} else {
		rep.writeTable(stdout)
	}
	switch {
	case len(rep.Errors) > 0 || ctx.Err() != nil:
		return 1
	case cfg.strict:
		for _, c := range rep.Checks {
			if c.Target && c.Result != "PASS" {
				return 1
			}
		}
	}
	return 0
}

// elapsed is for progress lines.
func elapsed(t time.Time) string { return time.Since(t).Round(100 * time.Millisecond).String() }

// printReport prints a saved JSON report.
func printReport(cfg config, stdout, stderr io.Writer) int {
	b, err := os.ReadFile(cfg.reportFile)
	if err == nil {
		var rep report
		if err = json.Unmarshal(b, &rep); err == nil {
			if cfg.output == "json" {
				err = rep.writeJSON(stdout)
			} else {
				rep.writeTable(stdout)
			}
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: --report %s: %v\n", cfg.reportFile, err)
		return 1
	}
	return 0
}
