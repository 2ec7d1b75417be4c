package workercmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/pkg/queue"
)

// gone reports whether process pid has ended or is ending: it no longer
// exists, or is a zombie its new parent has not reaped yet, or is exiting
// (PF_EXITING; a killed process closes its files, so its end of an output
// pipe, before it turns into a zombie).
func gone(t *testing.T, pid int) bool {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	require.NoError(t, err)
	_, rest, ok := bytes.Cut(b, []byte(") "))
	require.True(t, ok, "%q", b)
	f := strings.Fields(string(rest)) // state ppid pgrp session tty_nr tpgid flags ...
	flags, err := strconv.ParseUint(f[6], 10, 64)
	require.NoError(t, err)
	const pfExiting = 0x4
	return f[0] == "Z" || f[0] == "X" || flags&pfExiting != 0
}

// pidIn returns the number on the first line of out.
func pidIn(t *testing.T, out string) int {
	t.Helper()
	line, _, _ := strings.Cut(out, "\n")
	pid, err := strconv.Atoi(line)
	require.NoError(t, err, "output %q", out)
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	return pid
}

const leftNote = "[workq: the command left background processes; they were killed]"

func TestBackgroundProcesses(t *testing.T) {
	t.Parallel()

	t.Run("ExitZeroAcksAndKillsThem", func(t *testing.T) {
		t.Parallel()
		// The background sleep holds stdout: waiting for it to close the
		// pipe would wait 30s.
		e, stdout, stderr := setup(t, "sh", "-c", "sleep 30 & echo $!; echo done")
		require.NoError(t, e.Handle(t.Context(), item(1, "")))
		pid := pidIn(t, stdout.String())
		require.True(t, gone(t, pid), "the background sleep was killed")
		require.Equal(t, fmt.Sprintf("%d\ndone\n", pid), stdout.String(), "the output written so far is kept")
		require.Equal(t, leftNote+"\n", stderr.String())
	})

	t.Run("ANonZeroExitStillFails", func(t *testing.T) {
		t.Parallel()
		e, stdout, stderr := setup(t, "sh", "-c", "sleep 30 & echo $!; echo broken >&2; exit 4")
		err := e.Handle(t.Context(), item(1, ""))
		require.EqualError(t, err, "exit status 4: broken")
		require.True(t, gone(t, pidIn(t, stdout.String())))
		require.Equal(t, "broken\n"+leftNote+"\n", stderr.String())
	})

	t.Run("NoNoteWithoutThem", func(t *testing.T) {
		t.Parallel()
		e, stdout, stderr := setup(t, "sh", "-c", "sleep 0 & wait; echo done")
		require.NoError(t, e.Handle(t.Context(), item(1, "")))
		require.Equal(t, "done\n", stdout.String())
		require.Empty(t, stderr.String())
	})

	t.Run("OutputHeldOutsideTheGroupIsLeft", func(t *testing.T) {
		t.Parallel()
		// setsid takes the sleep out of the process group, beyond the
		// worker's reach: the worker stops reading after outputDelay. The
		// command waits until the sleep has left its group.
		pidFile := filepath.Join(t.TempDir(), "pid")
		e, stdout, stderr := setup(t, "sh", "-c",
			`setsid sh -c 'echo $$ >"$1.tmp"; mv "$1.tmp" "$1"; exec sleep 30' sh "$1" & until [ -e "$1" ]; do sleep 0.01; done; echo done`,
			"sh", pidFile)
		require.NoError(t, e.Handle(t.Context(), item(1, "")))
		b, err := os.ReadFile(pidFile)
		require.NoError(t, err)
		pid := pidIn(t, string(b))
		require.False(t, gone(t, pid), "a process in another session is not the worker's to kill")
		require.Equal(t, "done\n", stdout.String())
		require.Contains(t, stderr.String(), "held its output open; the rest was not read")
	})
}

func TestTimeoutKillsTheProcessGroup(t *testing.T) {
	t.Parallel()
	e, stdout, stderr := setup(t, "sh", "-c", "sleep 30 & echo $!; sleep 30")
	e.Timeout = time.Second
	err := e.Handle(t.Context(), item(1, ""))
	require.ErrorIs(t, err, queue.ErrItemTimeout, "the Job's failure policy tells a timeout by it")
	require.EqualError(t, err, "item timed out after 1s (--timeout); the process group was killed")
	require.True(t, gone(t, pidIn(t, stdout.String())), "the background sleep went with the group")
	require.NotContains(t, stderr.String(), leftNote, "the worker killed them itself")
}

func TestStopKillsTheProcessGroup(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	e, _, stderr := setup(t, "sh", "-c", `sleep 30 & echo $! >"$1.tmp"; mv "$1.tmp" "$1"; sleep 30`, "sh", pidFile)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.Handle(ctx, item(1, "")) }()
	var b []byte
	require.Eventually(t, func() bool {
		var err error
		b, err = os.ReadFile(pidFile)
		return err == nil
	}, time.Minute, 10*time.Millisecond, "the command did not start its background sleep")
	cancel()
	err := <-done
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, "stopped after")
	require.True(t, gone(t, pidIn(t, string(b))))
	require.NotContains(t, stderr.String(), leftNote)
}

// TestTheCommandSeesItsNameAsGiven: the worker finds the program on PATH
// once and starts it by that path, yet the program's argv[0] is the name
// the user gave, at every run, as a shell would start it.
func TestTheCommandSeesItsNameAsGiven(t *testing.T) {
	t.Parallel()
	e, stdout, _ := setup(t, "cat", "/proc/self/cmdline")
	for i := range 2 {
		require.NoError(t, e.Handle(t.Context(), item(int64(i), "x")))
	}
	require.Equal(t, "cat\x00/proc/self/cmdline\x00cat\x00/proc/self/cmdline\x00", stdout.String())
}
