// Package harness is what the process-level test suites (test/faults,
// test/badinput, test/security) share: it builds the real binaries, runs
// them as processes, snapshots a Job's keys in Redis, and counts the
// executions that a worker command recorded.
package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Bins are the paths of the real binaries.
type Bins struct {
	Coordinator string
	Worker      string
}

// Build builds cmd/coordinator and cmd/worker into dir.
func Build(dir string) (Bins, error) {
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"github.com/workq/workq/cmd/coordinator", "github.com/workq/workq/cmd/worker")
	cmd.Env = os.Environ()
	if out, err := cmd.CombinedOutput(); err != nil {
		return Bins{}, fmt.Errorf("go build: %v\n%s", err, out)
	}
	return Bins{Coordinator: filepath.Join(dir, "coordinator"), Worker: filepath.Join(dir, "worker")}, nil
}

// Env returns the test process's environment without any WORKQ_* variable,
// plus extra. Each process the suites start gets exactly what it is given.
func Env(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WORKQ_") {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

// Result is the outcome of a finished process.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// String shows a result in a failure message.
func (r Result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
}

// Run runs a binary to its end with env (see Env) and stdin (may be nil)
// and returns its output and exit code. It fails the test if the process
// cannot be started or outlives timeout.
func Run(t testing.TB, timeout time.Duration, env []string, stdin io.Reader, bin string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %q did not end within %s\nstdout: %s\nstderr: %s", filepath.Base(bin), args, timeout, stdout.String(), stderr.String())
	}
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %s: %v", bin, err)
	}
	return Result{Stdout: stdout.String(), Stderr: stderr.String(), Code: code}
}

// Proc is a background process whose output goes to a file and a buffer.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	done chan struct{}
	err  error

	mu  sync.Mutex
	out bytes.Buffer
}

type lockedWriter struct{ p *Proc }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.out.Write(b)
}

// Start starts a background process; its stdout and stderr are kept
// together (Output). The test's cleanup kills it if it still runs.
func Start(t testing.TB, name string, env []string, bin string, args ...string) *Proc {
	t.Helper()
	p := &Proc{Name: name, done: make(chan struct{})}
	p.Cmd = exec.Command(bin, args...)
	p.Cmd.Env = env
	p.Cmd.Stdout, p.Cmd.Stderr = lockedWriter{p}, lockedWriter{p}
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.Exited() {
			_ = p.Cmd.Process.Signal(syscall.SIGCONT)
			_ = p.Cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// Output returns what the process wrote so far.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error { return p.Cmd.Process.Signal(sig) }

// Kill9 kills the process with SIGKILL and waits for it.
func (p *Proc) Kill9() {
	_ = p.Cmd.Process.Kill()
	<-p.done
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Done is closed when the process has ended.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits up to timeout for the process to end and returns its exit
// code (-1 when killed by a signal).
func (p *Proc) Wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %s; output:\n%s", p.Name, timeout, p.Output())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	return 0
}

// Eventually polls cond every 20ms until it returns true or timeout passes;
// then it fails the test with what cond last said.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %s", what, timeout, detail)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// KeyState is one key as a snapshot holds it.
type KeyState struct {
	// Dump is the key's DUMP when its serialisation is canonical (strings,
	// lists); for hashes, sets and sorted sets it is their content, sorted:
	// DUMP of a hashtable-encoded key follows the table's order, which a
	// mere read can change (incremental rehashing).
	Dump string
	TTL  string // "none", or "expiring" (PTTL > 0; its exact value moves)
}

// Snapshot returns every key matching pattern (such as "workq:*") with its
// DUMP (see KeyState) and whether it expires, read with SCAN and PTTL.
func Snapshot(ctx context.Context, rdb redis.UniversalClient, pattern string) (map[string]KeyState, error) {
	out := map[string]KeyState{}
	iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		v, err := canonical(ctx, rdb, k)
		if errors.Is(err, redis.Nil) {
			continue // gone meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", k, err)
		}
		ttl, err := rdb.PTTL(ctx, k).Result()
		if err != nil {
			return nil, fmt.Errorf("pttl %s: %w", k, err)
		}
		st := KeyState{Dump: v, TTL: "none"}
		if ttl > 0 {
			st.TTL = "expiring"
		}
		out[k] = st
	}
	return out, iter.Err()
}

func canonical(ctx context.Context, rdb redis.UniversalClient, k string) (string, error) {
	typ, err := rdb.Type(ctx, k).Result()
	if err != nil {
		return "", err
	}
	var parts []string
	switch typ {
	case "none":
		return "", redis.Nil
	case "hash":
		m, err := rdb.HGetAll(ctx, k).Result()
		if err != nil {
			return "", err
		}
		for f, v := range m {
			parts = append(parts, fmt.Sprintf("%q=%q", f, v))
		}
	case "set":
		if parts, err = rdb.SMembers(ctx, k).Result(); err != nil {
			return "", err
		}
	case "zset":
		zs, err := rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
		if err != nil {
			return "", err
		}
		for _, z := range zs {
			parts = append(parts, fmt.Sprintf("%q=%v", z.Member, z.Score))
		}
	default:
		return rdb.Dump(ctx, k).Result()
	}
	sort.Strings(parts)
	return typ + ":" + strings.Join(parts, ","), nil
}

// DiffSnapshots describes how two snapshots differ; empty when equal.
func DiffSnapshots(before, after map[string]KeyState) string {
	var diffs []string
	for k, b := range before {
		a, ok := after[k]
		switch {
		case !ok:
			diffs = append(diffs, "deleted "+k)
		case a != b:
			diffs = append(diffs, "changed "+k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			diffs = append(diffs, "added "+k)
		}
	}
	sort.Strings(diffs)
	return strings.Join(diffs, ", ")
}

// CountLines counts, over every file in dir whose name starts with prefix,
// how often each complete line (ended by '\n') occurs. A line cut short by
// a kill has no '\n' and is not counted. keep filters the lines counted.
func CountLines(dir, prefix string, keep func(line string) bool) (map[string]int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		r := bufio.NewReaderSize(f, 256*1024)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				break // EOF: a last line without '\n' is incomplete
			}
			line = line[:len(line)-1]
			if keep == nil || keep(line) {
				counts[line]++
			}
		}
		f.Close()
	}
	return counts, nil
}

// Main is a TestMain body: it builds the binaries into a temporary
// directory, sets *bins, runs the tests, removes the directory and exits.
func Main(m *testing.M, name string, bins *Bins) {
	dir, err := os.MkdirTemp("", "workq-"+name+"-bin-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if *bins, err = Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
