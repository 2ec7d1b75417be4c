package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

// Peak RSS is VmHWM of /proc/PID/status, the high-water mark of the
// process's own memory map. wait4's ru_maxrss is not used: Linux carries
// the parent's peak RSS into a child started with vfork+exec (as Go and
// os/exec start processes), so a child's ru_maxrss is never below the
// bench's own.

// vmHWM returns VmHWM of /proc/<pid>/status ("self" for this process) in
// bytes.
func vmHWM(pid string) (int64, error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, err
	}
	for _, l := range bytes.Split(b, []byte("\n")) {
		v, ok := bytes.CutPrefix(l, []byte("VmHWM:"))
		if !ok {
			continue
		}
		f := bytes.Fields(v) // "1234", "kB"
		if len(f) == 0 {
			break
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, err
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%s/status", pid)
}

// hwmWatch polls a running process's VmHWM every 5 ms; Stop returns the
// largest value seen. A peak reached in the last 5 ms before the process
// exits can be missed.
type hwmWatch struct {
	max  atomic.Int64
	stop chan struct{}
	done chan struct{}
}

func watchHWM(pid int) *hwmWatch {
	w := &hwmWatch{stop: make(chan struct{}), done: make(chan struct{})}
	id := strconv.Itoa(pid)
	go func() {
		defer close(w.done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			if v, err := vmHWM(id); err == nil && v > w.max.Load() {
				w.max.Store(v)
			}
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// Stop ends the polling and returns the peak seen, in bytes.
func (w *hwmWatch) Stop() int64 {
	close(w.stop)
	<-w.done
	return w.max.Load()
}
