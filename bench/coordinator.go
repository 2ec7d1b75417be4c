package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/workq/workq/pkg/queue"
)

// writeLines writes a file of n 16-byte items, one per line.
func writeLines(dir string, n int) (string, error) {
	path := filepath.Join(dir, fmt.Sprintf("items-%d.txt", n))
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i := range n {
		_, _ = w.WriteString(payload(i))
		_ = w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return "", err
	}
	return path, f.Close()
}

// coordPush is one `coordinator push -f FILE` measured.
type coordPush struct {
	seconds     float64
	redisCPU    float64
	maxRSSBytes int64
	cpu         float64 // the coordinator process's CPU seconds
}

// runCoordinatorPush creates job with the coordinator binary, then pushes
// the file with one `coordinator push`, timing the push and polling its
// peak RSS (VmHWM). It checks that every line arrived.
func runCoordinatorPush(ctx context.Context, e *redisEnv, bin, job, file string, lines int) (coordPush, error) {
	if out, err := exec.CommandContext(ctx, bin, "--redis", e.url, "create", job).CombinedOutput(); err != nil {
		return coordPush{}, fmt.Errorf("coordinator create: %v: %s", err, firstLine(out))
	}
	m, err := e.meter(ctx)
	if err != nil {
		return coordPush{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, bin, "--redis", e.url, "push", job, "-f", file)
	errb := &tailBuffer{max: 4096}
	cmd.Stdout, cmd.Stderr = io.Discard, errb
	var runErr error
	var hwm int64
	if runErr = cmd.Start(); runErr == nil {
		w := watchHWM(cmd.Process.Pid)
		runErr = cmd.Wait()
		hwm = w.Stop()
	}
	d, cpu, err := m.stop(ctx)
	if err != nil {
		return coordPush{}, err
	}
	var res coordPush
	res.seconds, res.redisCPU, res.maxRSSBytes = d.Seconds(), cpu, hwm
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.cpu = tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
	}
	if runErr != nil {
		return res, fmt.Errorf("coordinator push: %v: %s", runErr, firstLine([]byte(errb.String())))
	}
	c, err := queue.Open(ctx, queue.Options{URL: e.url})
	if err != nil {
		return res, err
	}
	defer c.Close()
	st, err := c.Inspector().Status(ctx, job)
	if err != nil {
		return res, err
	}
	if n := st.Items.Pending; n != int64(lines) {
		return res, fmt.Errorf("coordinator push: %d items pending after pushing %d lines", n, lines)
	}
	return res, nil
}

func firstLine(b []byte) string {
	return strings.SplitN(strings.TrimSpace(string(b)), "\n", 2)[0]
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
