package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// The command-per-item rows: one process per item, so their limit is fork
// and exec, not Redis. Every row runs `true` for each of the same items,
// two at a time.
const (
	runXargs    = "xargs -P 2 -n 1 true"
	runEmbedded = "coordinator run -p 2 -- true (embedded Redis)"
	runRedis    = "coordinator run -p 2 --redis URL -- true"
)

func (b *bench) commandPerItem(ctx context.Context) {
	n := b.cfg.runItems
	file, err := writeLines(b.tmp, n)
	if err != nil {
		b.fail("command-per-item items", err)
		return
	}
	defer os.Remove(file)
	bin, berr := b.build(ctx, "coordinator")
	xargs, xerr := exec.LookPath("xargs")
	type variant struct {
		name    string
		notRun  error
		argv    func(run int) []string
		samples []sample
	}
	vs := []*variant{
		{name: runXargs, notRun: xerr, argv: func(int) []string { return []string{xargs, "-P", "2", "-n", "1", "true"} }},
		{name: runEmbedded, notRun: berr, argv: func(run int) []string {
			return []string{bin, "run", "-p", "2", "--job", fmt.Sprintf("bench-run-%d", run), "-f", file, "--", "true"}
		}},
		{name: runRedis, notRun: berr, argv: func(run int) []string {
			return []string{bin, "--redis", b.env.url, "run", "-p", "2", "--job", fmt.Sprintf("bench-run-%d", run), "-f", file, "--", "true"}
		}},
	}
	for i := range b.cfg.runRuns {
		for _, v := range vs {
			if ctx.Err() != nil || v.notRun != nil {
				continue
			}
			if err := b.env.reset(ctx); err != nil {
				b.fail("command-per-item reset", err)
				return
			}
			stdin := ""
			if v.name == runXargs {
				stdin = file
			}
			d, cpu, err := runTimed(ctx, v.argv(i), stdin, 5*time.Minute)
			if err != nil {
				v.notRun = err
				b.progress("%s: not run: %v", v.name, err)
				continue
			}
			s := sample{drainRate: float64(n) / d.Seconds(), clientCPU: cpu / float64(n) * 1e5}
			b.progress("%s run %d/%d: %s items/s (%.2f s)", v.name, i+1, b.cfg.runRuns, human(s.drainRate), d.Seconds())
			v.samples = append(v.samples, s)
		}
	}
	for _, v := range vs {
		r := row{Group: groupRun, Name: v.name, Workers: 2, Items: n}
		switch {
		case len(v.samples) > 0:
			r.fill(v.samples)
		case v.notRun != nil:
			r.NotRun = v.notRun.Error()
		default:
			r.NotRun = "interrupted"
		}
		b.rep.Rows = append(b.rep.Rows, r)
	}
}

// runTimed runs argv (with stdin from a file when set) and returns its
// wall time and the CPU time of the process and every descendant it
// waited for (wait4's rusage).
func runTimed(ctx context.Context, argv []string, stdin string, timeout time.Duration) (time.Duration, float64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if stdin != "" {
		f, err := os.Open(stdin)
		if err != nil {
			return 0, 0, err
		}
		defer f.Close()
		cmd.Stdin = f
	}
	errb := &tailBuffer{max: 4096}
	cmd.Stdout, cmd.Stderr = io.Discard, errb
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	var cpu float64
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			cpu = tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
		}
	}
	if err != nil {
		return d, cpu, fmt.Errorf("%s: %w: %s", filepath.Base(argv[0]), err, lastLine(errb.String()))
	}
	return d, cpu, nil
}
