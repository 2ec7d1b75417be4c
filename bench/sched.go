package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// The scheduling section runs `coordinator run` as a user would (embedded
// Redis, no --batch-size) over items that sleep, and compares the wall
// time with the best any scheduler could do (issue 13): N items of d
// seconds on p workers take ⌈N/p⌉·d; items of mixed lengths take at least
// the longest-processing-time (LPT) schedule's makespan, within a few
// percent. A fixed startup (create, push, start p workers, notice the end)
// is measured on its own, with the same items and `true` for the command,
// and subtracted.

// schedCase is one measured case.
type schedCase struct {
	Name    string `json:"name"`
	Items   int    `json:"items"`
	Workers int    `json:"workers"`
	Command string `json:"command"`
	// WallSeconds is the whole `coordinator run`, start to exit.
	WallSeconds float64 `json:"wallSeconds"`
	// IdealSeconds is ⌈N/p⌉·d, or the LPT makespan of the items' durations
	// (Bound says which).
	IdealSeconds float64 `json:"idealSeconds"`
	Bound        string  `json:"bound"`
	// StartupSeconds is the same `coordinator run` with `true` for the
	// command.
	StartupSeconds float64 `json:"startupSeconds"`
	// Ratio is (wall − startup) / ideal; Limit the target's bound on it
	// (0: no target).
	Ratio  float64 `json:"ratio"`
	Limit  float64 `json:"limit,omitempty"`
	Note   string  `json:"note,omitempty"`
	NotRun string  `json:"notRun,omitempty"`
}

// Straggler case: base seconds per item, stragglers 20× slower on their
// first run only (a slow machine, not a slow item: a backup copy runs at
// the normal speed).
const (
	stragglerItems  = 100
	stragglerBase   = 0.1
	stragglerFactor = 20
	stragglerP      = 8
)

// sleepScript runs one item of the scheduling cases: $1 the file that
// logs runs (worker id, start time), $2 the seconds to sleep.
const sleepScript = `#!/bin/sh
echo "${WORKQ_WORKER_ID:-unknown} $(date +%s.%N)" >> "$1"
exec sleep "$2"
`

// spreadOf says how the logged runs spread over the workers and in time.
func spreadOf(path string, p int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "could not read the runs: " + err.Error()
	}
	per := map[string]int{}
	var starts []float64
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		per[f[0]]++
		if t, err := strconv.ParseFloat(f[1], 64); err == nil {
			starts = append(starts, t)
		}
	}
	most := 0
	for _, n := range per {
		most = max(most, n)
	}
	spread := 0.0
	if len(starts) > 0 {
		spread = slices.Max(starts) - slices.Min(starts)
	}
	return fmt.Sprintf("%d runs on %d of %d workers, at most %d on one; first to last start %.2f s", len(starts), len(per), p, most, spread)
}

// stragglerScript runs one straggler-case item: $1 the directory that
// records runs, $2 the item ("fast-N" or "slow-N"). A slow item's first run
// takes 20× the base; every later run of it (a backup copy) the base.
const stragglerScript = `#!/bin/sh
dir=$1 item=$2
echo "$item" >> "$dir/runs"
case $item in
slow-*) if mkdir "$dir/$item" 2>/dev/null; then exec sleep %s; fi ;;
esac
exec sleep %s
`

func (b *bench) scheduling(ctx context.Context) {
	bin, err := b.build(ctx, "coordinator")
	if err != nil {
		b.rep.Sched = append(b.rep.Sched, schedCase{Name: "scheduling", NotRun: err.Error()})
		return
	}
	type spec struct {
		name  string
		n     int      // items (or indexes)
		items []string // the items' lines, or nil for an Indexed Job
		p     int
		args  []string // after `coordinator run -p P`; -f FILE is added when items is set
		ideal float64
		bound string
		limit float64
	}
	// The same 100 durations every run, to the millisecond sleep takes.
	rnd := rand.New(rand.NewPCG(13, 13))
	var random []string
	var rd []float64
	for range 100 {
		d := math.Round((0.05+rnd.Float64()*0.45)*1000) / 1000
		rd = append(rd, d)
		random = append(random, strconv.FormatFloat(d, 'f', 3, 64))
	}
	specs := []spec{
		{name: "4 items × 2 s, 4 workers", n: 4, items: slices.Repeat([]string{"2"}, 4), p: 4, args: []string{"--", "{}"}, ideal: 2, bound: "⌈N/p⌉·d", limit: 1.15},
		{name: "5 indexes × 1 s, 5 workers", n: 5, p: 5, args: []string{"--completions", "5", "--", "1"}, ideal: 1, bound: "⌈N/p⌉·d", limit: 1.15},
		{name: "1 item × 3 s, 4 workers", n: 1, items: []string{"3"}, p: 4, args: []string{"--", "{}"}, ideal: 3, bound: "⌈N/p⌉·d", limit: 1.15},
		{name: "100 items of random 0.05–0.5 s, 8 workers", n: len(random), items: random, p: 8, args: []string{"--", "{}"}, ideal: lptMakespan(rd, 8),
			bound: fmt.Sprintf("LPT (lower bound %.2f s)", max(sum(rd)/8, slices.Max(rd))), limit: 1.2},
	}
	script := filepath.Join(b.tmp, "sched.sh")
	if err := os.WriteFile(script, []byte(sleepScript), 0o755); err != nil {
		b.fail("scheduling script", err)
		return
	}
	for _, s := range specs {
		if ctx.Err() != nil {
			return
		}
		c := schedCase{Name: s.name, Items: s.n, Workers: s.p, IdealSeconds: s.ideal, Bound: s.bound, Limit: s.limit}
		runs := filepath.Join(b.tmp, "sched-runs.txt")
		_ = os.Remove(runs)
		argv := []string{bin, "run", "-p", strconv.Itoa(s.p)}
		if s.items != nil {
			f, err := writeText(b.tmp, "sched.txt", s.items)
			if err != nil {
				b.fail("scheduling items", err)
				return
			}
			argv = append(argv, "-f", f)
		}
		// The command: `sh sched.sh RUNS SECONDS`, which logs the worker
		// and start time of each run, then sleeps.
		dash := slices.Index(s.args, "--")
		argv = append(argv, s.args[:dash+1]...)
		argv = append(argv, "sh", script, runs)
		argv = append(argv, s.args[dash+1:]...)
		c.Command = "coordinator " + strings.Join(argv[1:], " ")
		b.schedRun(ctx, &c, argv)
		if c.NotRun == "" {
			c.Note = spreadOf(runs, s.p)
		}
		b.rep.Sched = append(b.rep.Sched, c)
	}
	b.stragglers(ctx, bin)
}

// schedRun runs one case and fills its times. Its startup is the same
// command line with `true` for the command (the quicker of two runs: it is
// a fixed cost, not a sample).
func (b *bench) schedRun(ctx context.Context, c *schedCase, argv []string) {
	dash := slices.Index(argv, "--")
	st := math.Inf(1)
	for range 2 {
		d, _, err := runTimed(ctx, append(slices.Clone(argv[:dash+1]), "true"), "", 2*time.Minute)
		if err != nil {
			c.NotRun = "startup run: " + err.Error()
			b.progress("scheduling %s: not run: %v", c.Name, err)
			return
		}
		st = min(st, d.Seconds())
	}
	d, _, err := runTimed(ctx, argv, "", 5*time.Minute)
	if err != nil {
		c.NotRun = err.Error()
		b.progress("scheduling %s: not run: %v", c.Name, err)
		return
	}
	c.WallSeconds, c.StartupSeconds = d.Seconds(), st
	c.Ratio = (c.WallSeconds - st) / c.IdealSeconds
	b.progress("scheduling %s: %.2f s (startup %.2f s, ideal %.2f s: %.2f×)", c.Name, c.WallSeconds, st, c.IdealSeconds, c.Ratio)
}

// stragglers runs the speculative case: 100 items, two of which straggle
// on their first run, without and with --speculative.
func (b *bench) stragglers(ctx context.Context, bin string) {
	stragglerAt := []int{60, 80} // the stragglers' positions among the items
	slow := strconv.FormatFloat(stragglerBase*stragglerFactor, 'f', 2, 64)
	script := filepath.Join(b.tmp, "straggle.sh")
	if err := os.WriteFile(script, fmt.Appendf(nil, stragglerScript, slow, strconv.FormatFloat(stragglerBase, 'f', 2, 64)), 0o755); err != nil {
		b.fail("straggler script", err)
		return
	}
	var items []string
	for i := range stragglerItems {
		kind := "fast"
		if slices.Contains(stragglerAt, i) {
			kind = "slow"
		}
		items = append(items, fmt.Sprintf("%s-%03d", kind, i))
	}
	file, err := writeText(b.tmp, "stragglers.txt", items)
	if err != nil {
		b.fail("straggler items", err)
		return
	}
	ideal := math.Ceil(float64(stragglerItems)/stragglerP) * stragglerBase
	for _, spec := range []bool{false, true} {
		if ctx.Err() != nil {
			return
		}
		name := fmt.Sprintf("%d items × %.1f s, %d of them %d× slower on their first run, %d workers", stragglerItems, stragglerBase, len(stragglerAt), stragglerFactor, stragglerP)
		if spec {
			name += ", --speculative"
		}
		dir, err := os.MkdirTemp(b.tmp, "straggle-*")
		if err != nil {
			b.fail("straggler dir", err)
			return
		}
		c := schedCase{Name: name, Items: stragglerItems, Workers: stragglerP, IdealSeconds: ideal, Bound: "⌈N/p⌉·d without stragglers"}
		argv := []string{bin, "run", "-p", strconv.Itoa(stragglerP), "-f", file}
		if spec {
			argv = append(argv, "--speculative")
		}
		argv = append(argv, "--", "sh", script, dir, "{}")
		c.Command = "coordinator " + strings.Join(argv[1:], " ")
		b.schedRun(ctx, &c, argv)
		if c.NotRun == "" {
			runs, err := countRuns(filepath.Join(dir, "runs"))
			switch {
			case err != nil:
				c.Note = "could not count the runs: " + err.Error()
			default:
				backups := 0
				for _, i := range stragglerAt {
					backups += max(runs[fmt.Sprintf("slow-%03d", i)]-1, 0)
				}
				c.Note = fmt.Sprintf("%d runs in all; backup copies of the stragglers: %d", sumValues(runs), backups)
				if spec && backups == 0 {
					c.Note += " (no backup copy ran: speculative re-runs are not in effect)"
				}
				if !spec {
					c.Note += fmt.Sprintf("; without a backup a straggler alone takes %s s once it starts", slow)
				}
			}
		}
		_ = os.RemoveAll(dir)
		b.rep.Sched = append(b.rep.Sched, c)
	}
}

// countRuns reads the straggler script's log of runs: item -> runs.
func countRuns(path string) (map[string]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out[l]++
		}
	}
	return out, sc.Err()
}

func sumValues(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func sum(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s
}

// lptMakespan is the makespan of the longest-processing-time-first
// schedule of durations on p machines: each item, longest first, goes to
// the least loaded machine.
func lptMakespan(durations []float64, p int) float64 {
	ds := slices.Clone(durations)
	slices.Sort(ds)
	slices.Reverse(ds)
	loads := make([]float64, p)
	for _, d := range ds {
		loads[slices.Index(loads, slices.Min(loads))] += d
	}
	return slices.Max(loads)
}

// writeText writes lines to a file in dir.
func writeText(dir, name string, lines []string) (string, error) {
	path := filepath.Join(dir, name)
	return path, os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// schedulingChecks are issue 13's parallel targets.
func (b *bench) schedulingChecks() {
	for _, c := range b.rep.Sched {
		if c.Limit == 0 {
			continue
		}
		name := fmt.Sprintf("scheduling, %s: within %.2f× of %s plus startup", c.Name, c.Limit, c.Bound)
		if c.NotRun != "" {
			b.add(true, name, "NOT RUN", c.NotRun)
			continue
		}
		b.add(true, name, pass(c.Ratio <= c.Limit), fmt.Sprintf("%.2f s − startup %.2f s = %.2f× of %.2f s", c.WallSeconds, c.StartupSeconds, c.Ratio, c.IdealSeconds))
	}
}

func (rep *report) writeScheduling(w io.Writer) {
	if len(rep.Sched) == 0 {
		return
	}
	fmt.Fprintln(w, "\nscheduling: `coordinator run` (embedded Redis, no --batch-size) over sleeping items, against the ideal")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\twall s\tstartup s\tideal s\twall / ideal\t(wall − startup) / ideal\ttarget\t")
	for _, c := range rep.Sched {
		if c.NotRun != "" {
			fmt.Fprintf(tw, "%s\tnot run: %s\t\t\t\t\t\t\n", c.Name, c.NotRun)
			continue
		}
		target := "-"
		if c.Limit > 0 {
			target = fmt.Sprintf("≤ %.2f×", c.Limit)
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.2f (%s)\t%.2f×\t%.2f×\t%s\t\n", c.Name, c.WallSeconds, c.StartupSeconds, c.IdealSeconds, c.Bound, c.WallSeconds/c.IdealSeconds, c.Ratio, target)
	}
	_ = tw.Flush()
	for _, c := range rep.Sched {
		if c.Note != "" {
			fmt.Fprintf(w, "  %s: %s\n", c.Name, c.Note)
		}
	}
}
