package testkit

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeTB is a test whose Fatal and Fatalf end only the goroutine that
// calls them and keep the message, so that a test can check how a helper
// fails. Everything else goes to the real test.
type fakeTB struct {
	testing.TB
	mu      sync.Mutex
	failure string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatal(args ...any) { f.fail(fmt.Sprint(args...)) }

func (f *fakeTB) Fatalf(format string, args ...any) { f.fail(fmt.Sprintf(format, args...)) }

func (f *fakeTB) fail(msg string) {
	f.mu.Lock()
	f.failure = msg
	f.mu.Unlock()
	runtime.Goexit()
}

// failureOf runs fn with a fakeTB on a goroutine of its own and returns
// how it failed the test ("" when it did not).
func failureOf(t *testing.T, fn func(tb testing.TB)) string {
	t.Helper()
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failure
}

// helperBlocks makes TestHelperBlocks, run in a process of its own, block
// forever.
const helperBlocks = "TESTKIT_HELPER_BLOCKS"

// TestHelperBlocks is a Go program that never ends, for Wait's timeout: it
// does nothing unless helperBlocks is set.
func TestHelperBlocks(t *testing.T) {
	if os.Getenv(helperBlocks) != "1" {
		t.Skip("a helper process, run by WaitPastTheTimeoutShowsWhereAGoProgramWaits")
	}
	fmt.Println("blocking")
	blockForever()
}

//go:noinline
func blockForever() {
	for {
		time.Sleep(time.Hour)
	}
}

func sh(script string) Command {
	return Command{Bin: "/bin/sh", Args: []string{"-c", script}}
}

// TestProcExitIsPublishedOnce hammers Exited, Result and String from many
// goroutines while processes end: under -race, a reader that saw a
// half-published exit fails it, and no reader may see an exit without its
// whole output.
func TestProcExitIsPublishedOnce(t *testing.T) {
	t.Parallel()
	for round := range 20 {
		p := Start(t, sh(fmt.Sprintf("echo out-%d; echo err-%d >&2; exit 3", round, round)))
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for seen := 0; seen < 50; {
					exited := p.Exited()
					r := p.Result()
					_ = p.String()
					if r.Running {
						assert.False(t, exited, "Exited, then Result says it still runs")
						assert.Equal(t, -1, r.Code, "no exit code while it runs")
						continue
					}
					seen++
					assert.Equal(t, 3, r.Code)
					assert.Error(t, r.Err)
					assert.Equal(t, fmt.Sprintf("out-%d\n", round), r.Stdout, "the whole output once it has exited")
					assert.Equal(t, fmt.Sprintf("err-%d\n", round), r.Stderr)
					assert.True(t, p.Exited())
				}
			})
		}
		wg.Go(func() { assert.Equal(t, 3, p.Wait(t, time.Minute)) })
		wg.Wait()
	}
}

func TestProc(t *testing.T) {
	t.Parallel()

	t.Run("RunKeepsStdoutStderrAndExitCode", func(t *testing.T) {
		t.Parallel()
		c := sh(`cat; echo oops >&2; exit 2`)
		c.Stdin = strings.NewReader("hello\n")
		r := Run(t, time.Minute, c)
		require.Equal(t, Result{Stdout: "hello\n", Stderr: "oops\n", Code: 2, Err: r.Err}, r)
		require.ErrorContains(t, r.Err, "exit status 2")
		require.True(t, strings.HasPrefix(r.String(), "exit 2\nstdout:\nhello\n\nstderr:\noops\n"), r.String())
	})

	t.Run("ExitZeroHasNoError", func(t *testing.T) {
		t.Parallel()
		r := Run(t, time.Minute, sh("true"))
		require.Zero(t, r.Code)
		require.NoError(t, r.Err)
		require.False(t, r.Running)
	})

	t.Run("OutputIsStdoutThenStderr", func(t *testing.T) {
		t.Parallel()
		p := Start(t, sh(`echo 1; echo 2 >&2; echo 3; echo 4 >&2`))
		require.Zero(t, p.Wait(t, time.Minute), p)
		require.Equal(t, "1\n3\n2\n4\n", p.Output())
		require.Equal(t, "1\n3\n", p.Stdout())
		require.Equal(t, "2\n4\n", p.Stderr())
	})

	t.Run("SignalledProcessHasCodeMinusOne", func(t *testing.T) {
		t.Parallel()
		p := Start(t, sh("echo ready; exec sleep 1000"))
		Eventually(t, 30*time.Second, "sh started", func() (bool, string) { return p.Stdout() == "ready\n", p.String() })
		require.False(t, p.Exited())
		r := p.Result()
		require.True(t, r.Running)
		require.True(t, strings.HasPrefix(r.String(), "still running\n"), r.String())
		p.Signal(t, syscall.SIGTERM)
		require.Equal(t, -1, p.Wait(t, time.Minute))
		require.True(t, p.Exited())
		require.Contains(t, p.Result().String(), "exit -1: signal: terminated")
	})

	t.Run("KillEndsTheProcessAndIsIdempotent", func(t *testing.T) {
		t.Parallel()
		p := Start(t, sh("exec sleep 1000"))
		p.Kill()
		require.True(t, p.Exited())
		p.Kill()
		require.Equal(t, -1, p.Wait(t, time.Second))
		require.Contains(t, p.String(), "signal: killed")
	})

	t.Run("WaitPastTheTimeoutKillsAndFails", func(t *testing.T) {
		t.Parallel()
		c := sh("echo still here; exec sleep 1000")
		c.Name = "sleeper"
		var p *Proc
		msg := failureOf(t, func(tb testing.TB) {
			p = Start(tb, c)
			Eventually(tb, 30*time.Second, "sh started", func() (bool, string) { return p.Stdout() != "", "" })
			p.Wait(tb, 50*time.Millisecond)
		})
		require.True(t, strings.HasPrefix(msg, "sleeper did not exit within 50ms and was stopped (SIGQUIT, then SIGKILL)"), msg)
		require.Contains(t, msg, "still here")
		require.True(t, p.Exited(), "the process was stopped")
	})

	t.Run("WaitPastTheTimeoutShowsWhereAGoProgramWaits", func(t *testing.T) {
		t.Parallel()
		c := Command{Name: "blocker", Bin: os.Args[0], Args: []string{"-test.run=^TestHelperBlocks$"}, Env: []string{helperBlocks + "=1"}}
		var p *Proc
		msg := failureOf(t, func(tb testing.TB) {
			p = Start(tb, c)
			Eventually(tb, 30*time.Second, "the helper blocks", func() (bool, string) { return strings.Contains(p.Stdout(), "blocking"), p.Stdout() })
			p.Wait(tb, 50*time.Millisecond)
		})
		require.Contains(t, msg, "SIGQUIT", "the Go runtime's goroutine dump")
		require.Contains(t, msg, "testkit.blockForever", "the stack of the goroutine that waits")
		require.True(t, p.Exited())
	})

	t.Run("SignalToAnEndedProcessFails", func(t *testing.T) {
		t.Parallel()
		p := Start(t, sh("true"))
		p.Wait(t, time.Minute)
		msg := failureOf(t, func(tb testing.TB) { p.Signal(tb, syscall.SIGTERM) })
		require.Contains(t, msg, "send terminated to sh -c true: os: process already finished")
	})

	t.Run("TrySignalSaysWhenTheProcessEnded", func(t *testing.T) {
		t.Parallel()
		p := Start(t, sh("exec sleep 1000"))
		require.NoError(t, p.TrySignal(syscall.SIGSTOP))
		require.NoError(t, p.TrySignal(syscall.SIGCONT))
		p.Kill()
		require.ErrorContains(t, p.TrySignal(syscall.SIGCONT), "os: process already finished")
	})

	t.Run("UnstartableCommandFails", func(t *testing.T) {
		t.Parallel()
		msg := failureOf(t, func(tb testing.TB) { Start(tb, Command{Bin: "/no/such/binary"}) })
		require.Contains(t, msg, "start binary: fork/exec /no/such/binary")
		require.Contains(t, msg, "no such file")
	})

	t.Run("CleanupKillsWhatStillRuns", func(t *testing.T) {
		t.Parallel()
		var p *Proc
		t.Run("Inner", func(t *testing.T) { p = Start(t, sh("exec sleep 1000")) })
		require.True(t, p.Exited(), "the inner test's cleanup killed it")
	})
}

// TestEnv cannot run in parallel: it sets this process's environment.
func TestEnv(t *testing.T) {
	t.Setenv("WORKQ_REDIS_URL", "redis://from-the-developer:1/0")
	t.Setenv("TESTKIT_KEPT", "yes")
	c := sh(`echo "url=$WORKQ_REDIS_URL job=$WORKQ_JOB kept=$TESTKIT_KEPT color=$NO_COLOR"`)
	c.Env = []string{"WORKQ_JOB=given", "TESTKIT_KEPT=replaced"}
	r := Run(t, time.Minute, c)
	require.Equal(t, "url= job=given kept=replaced color=1\n", r.Stdout, r)
	for _, kv := range Env() {
		require.False(t, strings.HasPrefix(kv, "WORKQ_"), kv)
	}
}

func TestBuildNeedsMain(t *testing.T) {
	t.Parallel()
	msg := failureOf(t, func(tb testing.TB) { Build(tb) })
	require.Contains(t, msg, "testkit.Build needs testkit.Main as the suite's TestMain")
}
