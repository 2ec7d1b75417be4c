package workercmd

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"

	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

// setup returns an Exec running argv, and the buffers its output goes to.
func setup(t *testing.T, argv ...string) (e *Exec, stdout, stderr *bytes.Buffer) {
	t.Helper()
	stdout, stderr = new(bytes.Buffer), new(bytes.Buffer)
	e = &Exec{Argv: argv, Out: &Output{Stdout: stdout, Stderr: stderr}}
	require.NoError(t, e.Check())
	return e, stdout, stderr
}

// item is an item of a work-queue Job: it has no index.
func item(id int64, payload string) queue.Item {
	return queue.Item{ID: id, Attempt: 1, Payload: []byte(payload), Index: -1}
}

// underWorker runs e as the handler of a real queue.Worker (id worker) on
// a new Job of the given items on miniredis, until the Job is drained.
func underWorker(t *testing.T, e *Exec, job, worker string, spec jobstate.Spec, items ...string) {
	t.Helper()
	m := miniredis.RunT(t)
	c, err := queue.Open(t.Context(), queue.Options{URL: "redis://" + m.Addr() + "/0"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.Create(t.Context(), job, spec))
	if !spec.Counted() {
		payloads := make([][]byte, len(items))
		for i, it := range items {
			payloads[i] = []byte(it)
		}
		_, err = c.Push(t.Context(), job, payloads, queue.PushOptions{})
		require.NoError(t, err)
		_, err = c.Seal(t.Context(), job)
		require.NoError(t, err)
	}
	w, err := queue.NewWorker(c, queue.WorkerConfig{Job: job, ID: worker, Handler: e, Wait: time.Minute,
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, w.Run(t.Context()))
}

func TestSubstitution(t *testing.T) {
	t.Parallel()
	const tricky = `a b; $(echo no) "q" *`

	t.Run("TheItemIsOneArgument", func(t *testing.T) {
		t.Parallel()
		e, stdout, _ := setup(t, "sh", "-c", `printf '%s|' "$@"`, "sh", "{}", "pre-{}-post", "{}{}")
		require.NoError(t, e.Handle(t.Context(), item(1, tricky)))
		require.Equal(t, tricky+"|pre-"+tricky+"-post|"+tricky+tricky+"|", stdout.String())
	})

	t.Run("TheItemIsOnStdin", func(t *testing.T) {
		t.Parallel()
		e, stdout, _ := setup(t, "cat")
		require.NoError(t, e.Handle(t.Context(), item(1, "a\x00b\nc")))
		require.Equal(t, "a\x00b\nc", stdout.String(), "stdin takes any bytes, NUL too")
	})

	t.Run("ALargeItemIsOnStdinWhole", func(t *testing.T) {
		t.Parallel()
		e, stdout, _ := setup(t, "wc", "-c")
		require.NoError(t, e.Handle(t.Context(), item(1, strings.Repeat("x", 100_000))))
		require.Equal(t, "100000", strings.TrimSpace(stdout.String()))
	})

	t.Run("AnItemLargerThanAPipeIsOnStdinWhole", func(t *testing.T) {
		t.Parallel()
		e, stdout, _ := setup(t, "wc", "-c")
		require.NoError(t, e.Handle(t.Context(), item(1, strings.Repeat("x", 3*maxPipeInput+1))))
		require.Equal(t, strconv.Itoa(3*maxPipeInput+1), strings.TrimSpace(stdout.String()))
	})

	t.Run("ANULByteCannotBeAnArgument", func(t *testing.T) {
		t.Parallel()
		e, stdout, stderr := setup(t, "sh", "-c", "echo ran", "sh", "{}")
		err := e.Handle(t.Context(), item(1, "a\x00b"))
		require.ErrorContains(t, err, "NUL byte")
		require.ErrorContains(t, err, "read it from stdin instead of {}")
		require.Empty(t, stdout.String()+stderr.String(), "the command did not run")
	})

	t.Run("TheCommandNameIsNotSubstituted", func(t *testing.T) {
		t.Parallel()
		e, _, _ := setup(t, "true")
		e.Argv = []string{"{}"}
		require.ErrorContains(t, e.Handle(t.Context(), item(1, "true")), `"{}"`)
	})
}

func TestBatchStdin(t *testing.T) {
	t.Parallel()
	items := []queue.Item{item(7, "a"), item(8, "b c\nd")}
	script := `echo "$WORKQ_BATCH_SIZE $WORKQ_ITEM_IDS" >&2; cat`

	t.Run("OneItemPerLine", func(t *testing.T) {
		t.Parallel()
		e, stdout, stderr := setup(t, "sh", "-c", script)
		require.NoError(t, e.HandleBatch(t.Context(), items))
		require.Equal(t, "a\nb c\nd\n", stdout.String())
		require.Equal(t, "2 7,8\n", stderr.String())
	})

	t.Run("NULSeparatedWithNull", func(t *testing.T) {
		t.Parallel()
		e, stdout, stderr := setup(t, "sh", "-c", script)
		e.NUL = true
		require.NoError(t, e.HandleBatch(t.Context(), items))
		require.Equal(t, "a\x00b c\nd\x00", stdout.String(), "an item's newline stays inside it")
		require.Equal(t, "2 7,8\n", stderr.String())
	})
}

func TestEnvironment(t *testing.T) {
	t.Parallel()
	base := []string{
		"PATH=" + os.Getenv("PATH"),
		"KEPT=yes",
		"WORKQ_REDIS_URL=redis://:s3cret@redis:6379/0",
		"WORKQ_REDIS_PASSWORD=s3cret",
		"WORKQ_REDIS_CA=/etc/ca.pem",
		"WORKQ_REDIS_SOMETHING_NEW=1",
		"WORKQ_ITEM_ID=stale", // the worker's own is replaced by the item's
	}
	environ := func(t *testing.T, e *Exec, it queue.Item) map[string]string {
		t.Helper()
		e.baseEnv = base
		stdout := e.Out.Stdout.(*bytes.Buffer)
		require.NoError(t, e.Handle(t.Context(), it))
		return envOf(stdout.String())
	}
	printEnv := []string{"env"}

	t.Run("TheItemsVariables", func(t *testing.T) {
		t.Parallel()
		e, _, _ := setup(t, printEnv...)
		env := environ(t, e, queue.Item{ID: 3, Attempt: 2, Payload: []byte("3"), Fence: 17, Index: 3})
		for k, v := range map[string]string{"WORKQ_ITEM_ID": "3", "WORKQ_ATTEMPT": "2", "WORKQ_FENCE": "17",
			"WORKQ_INDEX": "3", "JOB_COMPLETION_INDEX": "3", "KEPT": "yes"} {
			require.Equal(t, v, env[k], k)
		}
	})

	t.Run("NoIndexOutsideAnIndexedJob", func(t *testing.T) {
		t.Parallel()
		e, _, _ := setup(t, printEnv...)
		env := environ(t, e, item(5, "x"))
		require.Equal(t, "5", env["WORKQ_ITEM_ID"])
		require.NotContains(t, env, "WORKQ_INDEX")
		require.NotContains(t, env, "JOB_COMPLETION_INDEX")
	})

	// Under a real Worker the context names the Job and the worker.
	for _, c := range []struct {
		name  string
		spec  jobstate.Spec
		index string // "" for none
	}{
		{"TheJobAndWorkerFromTheWorker", jobstate.Spec{}, ""},
		{"TheJobAndWorkerFromTheWorkerIndexed", jobstate.Spec{Completions: jobstate.Ptr(1)}, "0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e, stdout, _ := setup(t, printEnv...)
			e.baseEnv = base
			underWorker(t, e, "thumbs", "w-1", c.spec, "x")
			env := envOf(stdout.String())
			for k, v := range map[string]string{"WORKQ_JOB": "thumbs", "WORKQ_WORKER_ID": "w-1", "WORKQ_ITEM_ID": "0",
				"WORKQ_ATTEMPT": "1", "KEPT": "yes"} {
				require.Equal(t, v, env[k], k)
			}
			fence, err := strconv.ParseInt(env["WORKQ_FENCE"], 10, 64)
			require.NoError(t, err, "WORKQ_FENCE %q", env["WORKQ_FENCE"])
			require.Positive(t, fence)
			if c.index == "" {
				require.NotContains(t, env, "WORKQ_INDEX")
				require.NotContains(t, env, "JOB_COMPLETION_INDEX")
			} else {
				require.Equal(t, c.index, env["WORKQ_INDEX"])
				require.Equal(t, c.index, env["JOB_COMPLETION_INDEX"])
			}
		})
	}

	t.Run("NoRedisSettingsByDefault", func(t *testing.T) {
		t.Parallel()
		e, _, _ := setup(t, printEnv...)
		env := environ(t, e, item(1, "x"))
		require.Equal(t, "yes", env["KEPT"])
		require.Equal(t, "1", env["WORKQ_ITEM_ID"])
		for k, v := range env {
			require.False(t, strings.HasPrefix(k, "WORKQ_REDIS_"), "%s reached the command", k)
			require.NotContains(t, v, "s3cret", k)
		}
	})

	t.Run("RedisSettingsWithPassRedisEnv", func(t *testing.T) {
		t.Parallel()
		e, stdout, _ := setup(t, printEnv...)
		e.PassRedisEnv = true
		e.baseEnv = base
		underWorker(t, e, "thumbs", "w-1", jobstate.Spec{}, "x")
		env := envOf(stdout.String())
		require.Equal(t, "redis://:s3cret@redis:6379/0", env["WORKQ_REDIS_URL"])
		require.Equal(t, "s3cret", env["WORKQ_REDIS_PASSWORD"])
		require.Equal(t, "/etc/ca.pem", env["WORKQ_REDIS_CA"])
		require.Equal(t, "1", env["WORKQ_REDIS_SOMETHING_NEW"])
		require.Equal(t, "0", env["WORKQ_ITEM_ID"])
		require.Equal(t, "thumbs", env["WORKQ_JOB"])
	})
}

// envOf reads the output of env into a map.
func envOf(out string) map[string]string {
	env := map[string]string{}
	for line := range strings.Lines(out) {
		k, v, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
		env[k] = v
	}
	return env
}

func TestFailure(t *testing.T) {
	t.Parallel()

	t.Run("ANonZeroExitFailsWithTheTailOfStderr", func(t *testing.T) {
		t.Parallel()
		e, _, stderr := setup(t, "sh", "-c", "echo first >&2; echo last words >&2; exit 3")
		err := e.Handle(t.Context(), item(1, ""))
		require.EqualError(t, err, "exit status 3: first\nlast words")
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "the exit status stays in the error, for the Job's failure policy")
		require.Equal(t, 3, exit.ExitCode())
		require.Equal(t, "first\nlast words\n", stderr.String())
	})

	t.Run("StdoutAndStderrAreKeptApart", func(t *testing.T) {
		t.Parallel()
		e, stdout, stderr := setup(t, "sh", "-c", "echo out; echo err >&2")
		require.NoError(t, e.Handle(t.Context(), item(1, "")))
		require.Equal(t, "out\n", stdout.String())
		require.Equal(t, "err\n", stderr.String())
	})

	t.Run("FramedOutput", func(t *testing.T) {
		t.Parallel()
		e, stdout, stderr := setup(t, "sh", "-c", "printf out; printf err >&2")
		e.Out.Framed = true
		require.NoError(t, e.Handle(t.Context(), item(1, "")))
		require.Equal(t, "o\x00\x00\x00\x03oute\x00\x00\x00\x03err", stdout.String())
		require.Empty(t, stderr.String())
	})
}

// lastWrite records the size of each write, the start of the first and the
// whole of the last, not every byte.
type lastWrite struct {
	sizes []int
	first []byte
	last  []byte
}

func (w *lastWrite) Write(p []byte) (int, error) {
	if w.sizes == nil {
		w.first = bytes.Clone(p[:min(len(p), 64)])
	}
	w.sizes = append(w.sizes, len(p))
	w.last = bytes.Clone(p[:min(len(p), 1024)])
	return len(p), nil
}

// TestOutputIsCapped is not parallel: the allocations it bounds are the
// whole process's (runtime.MemStats), so no other test may run meanwhile.
func TestOutputIsCapped(t *testing.T) {
	const n = 300 << 20
	var stdout, stderr lastWrite
	e := &Exec{Out: &Output{Stdout: &stdout, Stderr: &stderr}, Argv: []string{"sh", "-c",
		fmt.Sprintf(`head -c %d /dev/zero; yes | head -c %d >&2; echo LAST-LINE >&2; exit 3`, n, n)}}

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := e.Handle(t.Context(), item(1, ""))
	runtime.ReadMemStats(&after)

	note := func(dropped int) string { return fmt.Sprintf("\n[workq: %d more bytes of output dropped]\n", dropped) }
	outNote, errNote := note(n-maxCapture), note(n+len("LAST-LINE\n")-maxCapture)
	require.Equal(t, []int{maxCapture, len(outNote)}, stdout.sizes, "stdout: the cap, then the note")
	require.Equal(t, make([]byte, 64), stdout.first)
	require.Equal(t, outNote, string(stdout.last))
	require.Equal(t, []int{maxCapture, len(errNote)}, stderr.sizes, "stderr: the cap, then the note")
	require.Equal(t, strings.Repeat("y\n", 32), string(stderr.first))
	require.Equal(t, errNote, string(stderr.last))

	require.ErrorContains(t, err, "exit status 3: ")
	require.True(t, strings.HasSuffix(err.Error(), "y\ny\nLAST-LINE"), "the error ends with the last of stderr: %q", err)

	grew := after.TotalAlloc - before.TotalAlloc
	require.Less(t, grew, uint64(100<<20), "600 MiB of output allocated %d MiB", grew>>20)
	t.Logf("600 MiB of output allocated %d MiB", grew>>20)
}

func TestCappedCountsEveryWrite(t *testing.T) {
	t.Parallel()
	c := capped{tailSize: 4}
	chunk := bytes.Repeat([]byte("ab"), 1<<20)
	for range 5 {
		_, err := c.Write(chunk)
		require.NoError(t, err)
	}
	_, err := c.Write([]byte("xyz"))
	require.NoError(t, err)
	require.Len(t, c.head, maxCapture)
	require.Equal(t, int64(5*len(chunk)+3-maxCapture), c.dropped)
	require.Equal(t, "bxyz", string(c.tail))
	c.note("[workq: a note]")
	kept, notes := c.parts()
	require.Len(t, kept, maxCapture)
	require.Equal(t, fmt.Sprintf("\n[workq: %d more bytes of output dropped]\n[workq: a note]\n", c.dropped), string(notes))
}

func TestWarningsGoToTheLogger(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	e, _, _ := setup(t, "sh", "-c", "sleep 30 & echo started")
	e.Log = slog.New(slog.NewTextHandler(&logs, nil))
	require.NoError(t, e.Handle(t.Context(), item(42, "")))
	require.Contains(t, logs.String(), "level=WARN")
	require.Contains(t, logs.String(), "command left background processes")
	require.Contains(t, logs.String(), "item=42")
	require.Contains(t, logs.String(), "command=sh")
}

func TestStoppedBeforeItStarts(t *testing.T) {
	t.Parallel()
	e, _, _ := setup(t, "true")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, e.Handle(ctx, item(1, "")), context.Canceled)
}
