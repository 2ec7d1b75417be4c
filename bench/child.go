package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
	Kind        string `json:"kind"` // "ceiling", "workq" or "asynq"
	URL         string `json:"url"`
	Job         string `json:"job"` // workq Job name
	Items       int    `json:"items"`
	Batch       int    `json:"batch"`
	Workers     int    `json:"workers"`
	Concurrency int    `json:"concurrency"`
	PerBatch    bool   `json:"perBatch"` // ceiling: one lease entry per batch
	CPUProfile  string `json:"cpuProfile,omitempty"`
}

// childResp is what a child reports on stdout.
type childResp struct {
	DrainSeconds float64 `json:"drainSeconds"`
	Processed    int64   `json:"processed"`
	PeakRSSBytes int64   `json:"peakRSSBytes"` // VmHWM at the end of the drain
	Err          string  `json:"err,omitempty"`
}

// childResult is a child's report and its CPU time.
type childResult struct {
	childResp
	CPUSeconds float64 // user + system time of the child
}

// runChild drains in a child process and returns its report and peak RSS.
func runChild(ctx context.Context, req childReq, timeout time.Duration) (childResult, error) {
	self, err := os.Executable()
	if err != nil {
		return childResult{}, fmt.Errorf("find the bench binary: %w", err)
	}
	in, err := json.Marshal(req)
	if err != nil {
		return childResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, childArg)
	cmd.Stdin = bytes.NewReader(in)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	runErr := cmd.Run()
	var res childResult
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			res.CPUSeconds = tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
		}
	}
	if jerr := json.Unmarshal(out.Bytes(), &res.childResp); jerr != nil {
		return res, fmt.Errorf("%s drain child: %v: %s", req.Kind, runErr, strings.TrimSpace(errb.String()))
	}
	if res.Err != "" {
		return res, fmt.Errorf("%s drain child: %s", req.Kind, res.Err)
	}
	if runErr != nil {
		return res, fmt.Errorf("%s drain child: %w: %s", req.Kind, runErr, strings.TrimSpace(errb.String()))
	}
	return res, nil
}

// childMain is the child's side: read a childReq on stdin, drain, and
// write a childResp on stdout.
func childMain() int {
	var req childReq
	resp := childResp{}
	defer func() { _ = json.NewEncoder(os.Stdout).Encode(resp) }()
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		resp.Err = "bad request: " + err.Error()
		return 1
	}
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
		d   time.Duration
		n   int64
		err error
	)
	switch req.Kind {
	case "ceiling":
		d, n, err = ceilingDrain(ctx, req)
	case "workq":
		d, n, err = workqDrain(ctx, req)
	case "asynq":
		d, n, err = asynqDrain(ctx, req)
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
