package testkit

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// messageTail is how much of each output stream a failure message shows:
// its end, where a process says why it stopped.
const messageTail = 4000

// quitWait is how long a process that outlived its Wait has to print its
// goroutines after SIGQUIT.
const quitWait = 5 * time.Second

// waitDelay is how long Wait waits for a process's output to close after
// the process itself exited (a grandchild may hold it open).
const waitDelay = 5 * time.Second

// Env returns this process's environment without any WORKQ_* variable,
// with NO_COLOR=1 and then extra. Each process started here gets exactly
// the settings its test gives it; a later setting of a name wins.
func Env(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WORKQ_") {
			out = append(out, kv)
		}
	}
	out = append(out, "NO_COLOR=1")
	return append(out, extra...)
}

// Command is a process to start.
type Command struct {
	// Name names the process in failure messages. Default: the binary's
	// base name and the arguments.
	Name string
	Bin  string
	Args []string
	// Env is added to Env(): the process never sees this process's WORKQ_*
	// settings. Default: nothing added.
	Env []string
	// Dir is the working directory. Default: the test's.
	Dir string
	// Stdin is the process's input. Default: none (the null device).
	Stdin io.Reader
}

// Result is what a process left: its output and its exit.
type Result struct {
	Stdout, Stderr string
	// Code is the exit code; -1 when the process was ended by a signal,
	// when waiting for it failed otherwise (see Err), or while it runs.
	Code int
	// Err is what waiting for the process returned: nil after exit 0, an
	// *exec.ExitError after a non-zero exit or a signal, or another error
	// (such as exec.ErrWaitDelay when its output stayed open).
	Err error
	// Running is set when the process had not exited yet: the output is
	// what it wrote so far.
	Running bool
}

// String shows a result in a failure message, with the end of each
// stream.
func (r Result) String() string {
	var status string
	var ee *exec.ExitError
	switch {
	case r.Running:
		status = "still running"
	case r.Err == nil:
		status = "exit 0"
	case errors.As(r.Err, &ee) && ee.Exited():
		status = fmt.Sprintf("exit %d", r.Code)
	default:
		status = fmt.Sprintf("exit %d: %v", r.Code, r.Err)
	}
	return fmt.Sprintf("%s\nstdout:\n%s\nstderr:\n%s", status, tail(r.Stdout, messageTail), tail(r.Stderr, messageTail))
}

// Proc is a started process, its stdout and stderr kept. All its methods are safe for concurrent use, also
// while the process ends: one goroutine waits for the process and
// publishes its exit once, by closing done; every reader of the exit
// looks at done first.
type Proc struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr Buffer

	done chan struct{} // closed once exit is set, never before
	exit exit          // written by wait alone, before it closes done
}

// exit is how a process ended.
type exit struct {
	code int
	err  error
}

// Start starts a process. It fails the test when the process cannot be
// started, and kills the process when the test ends if it still runs.
func Start(t testing.TB, c Command) *Proc {
	t.Helper()
	name := cmp.Or(c.Name, strings.Join(append([]string{filepath.Base(c.Bin)}, c.Args...), " "))
	cmd := exec.Command(c.Bin, c.Args...)
	cmd.Env = Env(c.Env...)
	cmd.Dir = c.Dir
	cmd.Stdin = c.Stdin
	cmd.WaitDelay = waitDelay
	p := &Proc{name: name, cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.stdout, &p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go p.wait()
	t.Cleanup(p.Kill)
	return p
}

// wait is the one goroutine that waits for the process and the only
// writer of p.exit.
func (p *Proc) wait() {
	err := p.cmd.Wait()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		code = -1
	}
	p.exit = exit{code: code, err: err}
	close(p.done)
}

// ended returns how the process ended, and false while it runs. It is the
// only reader of p.exit.
func (p *Proc) ended() (exit, bool) {
	select {
	case <-p.done:
		return p.exit, true
	default:
		return exit{}, false
	}
}

// Run starts a process, waits up to timeout for its end (see Proc.Wait)
// and returns what it left.
func Run(t testing.TB, timeout time.Duration, c Command) Result {
	t.Helper()
	p := Start(t, c)
	p.Wait(t, timeout)
	return p.Result()
}

// Name is the process's name in messages (Command.Name).
func (p *Proc) Name() string { return p.name }

// Pid is the process's id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process; it fails the test when it cannot (the
// process was already waited for).
func (p *Proc) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("send %s to %s: %v", sig, p.name, err)
	}
}

// TrySignal sends sig to the process and returns the error instead of
// failing the test: for a process that may have ended by itself meanwhile.
// It never signals another process that reused the pid.
func (p *Proc) TrySignal(sig syscall.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("send %s to %s: %w", sig, p.name, err)
	}
	return nil
}

// Kill kills the process with SIGKILL, if it still runs, and returns once
// it has ended.
func (p *Proc) Kill() {
	if _, ok := p.ended(); ok {
		return
	}
	_ = p.cmd.Process.Kill() // fails only when it has just ended by itself
	<-p.done
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	_, ok := p.ended()
	return ok
}

// Wait waits up to timeout for the process to end and returns its exit
// code (-1 after a signal). A process that outlives timeout fails the
// test: it gets SIGQUIT first, on which a Go program prints the stacks of
// its goroutines (where it waits) and exits, then SIGKILL. The message
// shows the end of its stdout and all of its stderr.
func (p *Proc) Wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		if p.TrySignal(syscall.SIGQUIT) == nil {
			select {
			case <-p.done:
			case <-time.After(quitWait):
			}
		}
		p.Kill()
		r := p.Result()
		t.Fatalf("%s did not exit within %s and was stopped (SIGQUIT, then SIGKILL): exit %d\nstdout:\n%s\nstderr:\n%s",
			p.name, timeout, r.Code, tail(r.Stdout, messageTail), r.Stderr)
	}
	e, _ := p.ended()
	return e.code
}

// Result returns what the process left: after its end, all its output and
// its exit; before, the output so far, with Running set.
func (p *Proc) Result() Result {
	// Exit first: once the process has ended, its output is complete.
	e, ok := p.ended()
	r := Result{Stdout: p.stdout.String(), Stderr: p.stderr.String(), Code: -1, Running: !ok}
	if ok {
		r.Code, r.Err = e.code, e.err
	}
	return r
}

// Stdout returns what the process wrote to stdout so far.
func (p *Proc) Stdout() string { return p.stdout.String() }

// Stderr returns what the process wrote to stderr so far.
func (p *Proc) Stderr() string { return p.stderr.String() }

// Output returns what the process wrote so far: its stdout, then its
// stderr.
func (p *Proc) Output() string { return p.stdout.String() + p.stderr.String() }

// String shows the process in a failure message: its name and Result.
// Pass the Proc itself as a message argument (require.Equal(t, 0, code,
// "%s", p)), so that the message is made only when the assertion fails.
func (p *Proc) String() string { return p.name + ": " + p.Result().String() }
