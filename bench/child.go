package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

// Every drain runs in a child process (this binary, re-executed with
// childArg), so that its peak RSS is that of a process that did nothing
// but drain: the child reports its own VmHWM when the drain ends.

const childArg = "__drain"

// childReq says what a child drains.
type childReq struct {
	Kind        string `json:"kind"` // "ceiling", "workq", "asynq" or "scale"
	URL         string `json:"url"`
	Job         string `json:"job"` // workq Job name
	Items       int    `json:"items"`
	Batch       int    `json:"batch"`
	Workers     int    `json:"workers"`
	Concurrency int    `json:"concurrency"`
	Lease       string `json:"lease"` // ceiling: leasePerItem, leasePerBatch or leaseFenced
	CPUProfile  string `json:"cpuProfile,omitempty"`
	// Dead (scale) is how many of the Items indexes fail for good, spread
	// evenly; Hold keeps the last index running until the parent closes
	// the child's stdin.
	Dead int  `json:"dead,omitempty"`
	Hold bool `json:"hold,omitempty"`
}

// childResp is what a child reports on stdout.
type childResp struct {
	DrainSeconds float64 `json:"drainSeconds"`
	Processed    int64   `json:"processed"`
	PeakRSSBytes int64   `json:"peakRSSBytes"` // VmHWM at the end of the drain
	// Lease is what the workq workers' lease calls did (workq drains).
	Lease *leaseStats `json:"lease,omitempty"`
	Err   string      `json:"err,omitempty"`
}

// childResult is a child's report and its CPU time.
type childResult struct {
	childResp
	CPUSeconds float64 // user + system time of the child
}

// child is a running drain child.
type child struct {
	req    childReq
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    bytes.Buffer
	errb   *tailBuffer
	cancel context.CancelFunc
}

// startChild starts a drain child; its stdin stays open until release.
func startChild(ctx context.Context, req childReq, timeout time.Duration) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the bench binary: %w", err)
	}
	in, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	c := &child{req: req, cmd: exec.CommandContext(ctx, self, childArg), errb: &tailBuffer{max: 8192}, cancel: cancel}
	c.cmd.Stdout, c.cmd.Stderr = &c.out, c.errb
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		cancel()
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("start a %s drain child: %w", req.Kind, err)
	}
	if _, err := c.stdin.Write(append(in, '\n')); err != nil {
		c.release()
		_, _ = c.wait()
		return nil, fmt.Errorf("send the request to a %s drain child: %w", req.Kind, err)
	}
	return c, nil
}

// release closes the child's stdin: a held item may finish.
func (c *child) release() { _ = c.stdin.Close() }

// pid is the child's process id.
func (c *child) pid() int { return c.cmd.Process.Pid }

// wait waits for the child and returns its report and CPU time.
func (c *child) wait() (childResult, error) {
	defer c.cancel()
	runErr := c.cmd.Wait()
	var res childResult
	if c.cmd.ProcessState != nil {
		if ru, ok := c.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			res.CPUSeconds = tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
		}
	}
	kind := c.req.Kind
	if jerr := json.Unmarshal(c.out.Bytes(), &res.childResp); jerr != nil {
		return res, fmt.Errorf("%s drain child: %v: %s", kind, runErr, strings.TrimSpace(c.errb.String()))
	}
	if res.Err != "" {
		return res, fmt.Errorf("%s drain child: %s", kind, res.Err)
	}
	if runErr != nil {
		return res, fmt.Errorf("%s drain child: %w: %s", kind, runErr, strings.TrimSpace(c.errb.String()))
	}
	return res, nil
}

// runChild drains in a child process and returns its report.
func runChild(ctx context.Context, req childReq, timeout time.Duration) (childResult, error) {
	c, err := startChild(ctx, req, timeout)
	if err != nil {
		return childResult{}, err
	}
	c.release()
	return c.wait()
}

// childMain is the child's side: read a childReq on stdin, drain, and
// write a childResp on stdout. The end of stdin releases a held item.
func childMain() int {
	var req childReq
	resp := childResp{}
	defer func() { _ = json.NewEncoder(os.Stdout).Encode(resp) }()
	in := bufio.NewReader(os.Stdin)
	line, err := in.ReadBytes('\n')
	if err != nil && err != io.EOF {
		resp.Err = "read the request: " + err.Error()
		return 1
	}
	if err := json.Unmarshal(line, &req); err != nil {
		resp.Err = "bad request: " + err.Error()
		return 1
	}
	released := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, in)
		close(released)
	}()
	ctx := context.Background()
	if req.CPUProfile != "" {
		f, err := os.Create(req.CPUProfile)
		if err != nil {
			resp.Err = err.Error()
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			resp.Err = err.Error()
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	var (
		d time.Duration
		n int64
	)
	switch req.Kind {
	case "ceiling":
		d, n, err = ceilingDrain(ctx, req)
	case "workq":
		d, n, err = workqDrain(ctx, req, &resp)
	case "asynq":
		d, n, err = asynqDrain(ctx, req)
	case "scale":
		d, n, err = scaleDrain(ctx, req, released)
	default:
		err = fmt.Errorf("unknown drain kind %q", req.Kind)
	}
	resp.DrainSeconds, resp.Processed = d.Seconds(), n
	if hwm, herr := vmHWM("self"); herr == nil {
		resp.PeakRSSBytes = hwm
	}
	if err != nil {
		resp.Err = err.Error()
		return 1
	}
	return 0
}

func tvSeconds(tv syscall.Timeval) float64 { return float64(tv.Sec) + float64(tv.Usec)/1e6 }
