// Package badinput_test feeds both binaries bad input of every kind and
// checks that each is answered with one clear line on stderr, the right
// exit code (2 usage or input, 1 runtime), and no change at all to the
// keys in Redis.
package badinput_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/items"
	"github.com/workq/workq/internal/redistest"
	"github.com/workq/workq/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m, testkit.BuildOptions{}) }

const password = "s3cret-pw-4badinput"

// fixture is what every case runs against.
type fixture struct {
	bins         testkit.Bins
	open, locked *redistest.Server // no password; requirepass
	openURL      string
	dir          string
}

func setup(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{bins: testkit.Build(t), dir: t.TempDir()}
	f.open = redistest.ForTest(t)
	f.locked = redistest.ForTest(t, "--requirepass", password)
	f.openURL = f.open.URL()
	run := func(url string, args ...string) {
		t.Helper()
		r := testkit.Run(t, time.Minute, testkit.Command{Bin: f.bins.Coordinator, Args: args, Env: []string{"WORKQ_REDIS_URL=" + url}})
		require.Equal(t, 0, r.Code, "%v: %s", args, r)
	}
	run(f.openURL, "create", "photos", "--lease", "5s")
	run(f.openURL, "push", "photos", "a.jpg", "b.jpg", "c.jpg")
	run(f.openURL, "create", "closed", "--lease", "5s")
	run(f.openURL, "push", "closed", "x", "--seal")
	// finished is Complete: its one item ran.
	run(f.openURL, "create", "finished")
	run(f.openURL, "push", "finished", "x", "--seal")
	w := testkit.Run(t, time.Minute, testkit.Command{Bin: f.bins.Worker, Args: []string{"--job", "finished", "--", "true"},
		Env: []string{"WORKQ_REDIS_URL=" + f.openURL}})
	require.Equal(t, 0, w.Code, "worker: %s", w)
	run(f.openURL, "watch", "finished", "--interval", "50ms")
	run("redis://:"+password+"@"+f.locked.Addr+"/0", "create", "vault")
	return f
}

// file writes content to a file of the fixture and returns its path.
func (f *fixture) file(t *testing.T, name string, content []byte) string {
	t.Helper()
	p := filepath.Join(f.dir, name)
	require.NoError(t, os.WriteFile(p, content, 0o644))
	return p
}

func snapshot(t *testing.T, srv *redistest.Server, pw string) map[string]testkit.Key {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: pw})
	defer rdb.Close()
	s := testkit.Snapshot(t, rdb, "workq:*")
	require.NotEmpty(t, s, "the fixture's keys are there")
	return s
}

// badCase is one bad input.
type badCase struct {
	name   string
	worker bool     // run the worker, not the coordinator
	args   []string // command line
	env    []string // beyond WORKQ_REDIS_URL of the open server
	stdin  []byte
	locked bool // the case runs against the password-protected server
	code   int
	want   []string // substrings of the one stderr line
	// run replaces the plain run (the endless stdin).
	run  func(t *testing.T, f *fixture) testkit.Result
	once []string // substrings that occur exactly once: no doubled hint
}

func cases(t *testing.T, f *fixture) []badCase {
	big := f.file(t, "big.txt", append(bytes.Repeat([]byte("x"), items.DefaultMaxBytes+1), '\n'))
	atLimit := append(bytes.Repeat([]byte("y"), items.DefaultMaxBytes), '\n')
	lockedAddr := f.locked.Addr
	return []badCase{
		// Names.
		{name: "CreateNameNotADNSLabel", args: []string{"create", "Bad_Name"}, code: 2, want: []string{`"Bad_Name" is not a DNS label`, "use lowercase letters"}},
		{name: "CreateNameTooLong", args: []string{"create", strings.Repeat("a", 64)}, code: 2, want: []string{"job name"}},
		{name: "StatusNameWithSlash", args: []string{"status", "a/b"}, code: 2, want: []string{"not a DNS label"}},
		{name: "WorkerJobNameFromEnvironmentBad", worker: true, env: []string{"WORKQ_JOB=Bad_Name"}, args: []string{"--", "true"}, code: 2, want: []string{"not a DNS label"}},
		// Durations and counts.
		{name: "LeaseNotADuration", args: []string{"create", "x", "--lease", "1s2"}, code: 2, want: []string{`"1s2"`, "--lease", "see `coordinator create --help`"}},
		{name: "LeaseNegative", args: []string{"create", "x", "--lease", "-5s"}, code: 2, want: []string{"--lease must be positive"}},
		{name: "BatchSizeNegative", args: []string{"create", "x", "--batch-size", "-1"}, code: 2, want: []string{"--batch-size must be positive"}},
		{name: "BatchSizeOverMaximum", args: []string{"create", "x", "--batch-size", "100000"}, code: 2, want: []string{"batch-size (100000) must be between 1 and 5000"}},
		{name: "MaxAttemptsZero", args: []string{"create", "x", "--max-attempts", "0"}, code: 2, want: []string{"--max-attempts must be positive"}},
		{name: "ParallelismNegative", args: []string{"create", "x", "--parallelism", "-3"}, code: 2, want: []string{"--parallelism (-3) must not be negative"}},
		{name: "ParallelismZero", args: []string{"create", "x", "--parallelism", "0"}, code: 2, want: []string{"--parallelism 0 would pause the Job", "coordinator suspend"}},
		{name: "CompletionsNegative", args: []string{"create", "x", "--completions", "-1"}, code: 2, want: []string{"completions"}},
		{name: "CountNotANumber", args: []string{"create", "x", "--max-attempts", "three"}, code: 2, want: []string{`"three"`, "--max-attempts"}},
		{name: "MaxItemBytesZero", args: []string{"push", "photos", "a", "--max-item-bytes", "0"}, code: 2, want: []string{"--max-item-bytes (0) must be between 1"}},
		{name: "DeadLimitNegative", args: []string{"dead", "photos", "--limit", "-1"}, code: 2, want: []string{"--limit (-1) must not be negative"}},
		{name: "WatchIntervalTooShort", args: []string{"watch", "photos", "--interval", "1ms"}, code: 2, want: []string{"--interval (1ms) must be at least 10ms"}},
		{name: "ServeIntervalTooShort", args: []string{"serve", "--interval", "1ms"}, code: 2, want: []string{"--interval (1ms) must be at least 10ms"}},
		{name: "WorkerConcurrencyZero", worker: true, args: []string{"--job", "photos", "--concurrency", "0", "--", "true"}, code: 2, want: []string{"--concurrency (0) must be at least 1"}},
		{name: "WorkerBatchSizeNegative", worker: true, args: []string{"--job", "photos", "--batch-size", "-1", "--", "true"}, code: 2, want: []string{"--batch-size (-1) must be between 0"}},
		{name: "WorkerTimeoutNegative", worker: true, args: []string{"--job", "photos", "--timeout", "-1s", "--", "true"}, code: 2, want: []string{"--timeout (-1s) must not be negative"}},
		{name: "WorkerWaitNegative", worker: true, args: []string{"--job", "photos", "--wait", "-1s", "--", "true"}, code: 2, want: []string{"--wait (-1s) must not be negative"}},
		{name: "WorkerHeartbeatNotShorterThanLease", worker: true, args: []string{"--job", "photos", "--heartbeat", "10s", "--", "true"}, code: 2, want: []string{"--heartbeat (10s) must be at most half the Job's lease (5s)", "or 0 for a third of the lease"}},
		{name: "WorkerHeartbeatOverHalfTheLease", worker: true, args: []string{"--job", "photos", "--heartbeat", "3s", "--", "true"}, code: 2, want: []string{"--heartbeat (3s) must be at most half the Job's lease (5s)"}},
		// Flags, commands and formats.
		{name: "UnknownFlag", args: []string{"create", "x", "--bogus"}, code: 2, want: []string{"unknown flag: --bogus", "--help"}},
		{name: "UnknownCommand", args: []string{"bogus"}, code: 2, want: []string{`unknown command "bogus"`, "see `coordinator --help`"}},
		{name: "WorkerUnknownFlag", worker: true, args: []string{"--job", "photos", "--bogus", "--", "true"}, code: 2, want: []string{"unknown flag: --bogus", "--help"}},
		{name: "StatusOutputFormatUnknown", args: []string{"status", "photos", "-o", "yaml"}, code: 2, want: []string{`output format "yaml": use table or json`}},
		{name: "WorkerLogFormatUnknown", worker: true, args: []string{"--job", "photos", "--log-format", "xml", "--", "true"}, code: 2, want: []string{`log format "xml": use text or json`}},
		{name: "WorkerNullWithoutBatchExec", worker: true, args: []string{"--job", "photos", "--null", "--", "cat"}, code: 2, want: []string{"--null only applies with --batch-exec"}},
		{name: "WorkerBracesWithBatchExec", worker: true, args: []string{"--job", "photos", "--batch-exec", "--", "echo", "{}"}, code: 2, want: []string{"{} cannot be used with --batch-exec", "read them from stdin"}},
		{name: "WorkerMetricsAddressBad", worker: true, args: []string{"--job", "photos", "--metrics-listen", "no:such:addr", "--", "true"}, code: 2, want: []string{"--metrics-listen no:such:addr"}},
		{name: "RunCompletionsWithItems", args: []string{"run", "--completions", "3", "a", "--", "true"}, code: 2, want: []string{"--completions makes the items"}},
		// Failure and success policies, completion modes.
		{name: "FailurePolicyUnknownAction", args: []string{"create", "x", "--failure-policy", "Bogus:exit=1"}, code: 2, want: []string{`failure-policy "Bogus:exit=1"`, `has action "Bogus"; use FailJob, FailIndex, Ignore or Count`}},
		{name: "FailurePolicyMatchesExitZero", args: []string{"create", "x", "--failure-policy", "FailJob:exit=0"}, code: 2, want: []string{"matches exit code 0, which is a success; remove it"}},
		{name: "FailurePolicyWithoutCondition", args: []string{"create", "x", "--failure-policy", "FailJob"}, code: 2, want: []string{`failure-policy "FailJob": no condition`, "write ACTION:CONDITION such as FailJob:exit=42"}},
		{name: "FailurePolicyExitCodeNotANumber", args: []string{"run", "--completions", "2", "--failure-policy", "Ignore:exit=x", "--", "true"}, code: 2, want: []string{`exit code "x" is not a number`}},
		{name: "SuccessPolicyWithoutCompletions", args: []string{"create", "x", "--success-policy", "indexes=0-1"}, code: 2, want: []string{"success-policy (indexes=0-1) needs an Indexed Job", "set --completions K"}},
		{name: "SuccessPolicyBeyondTheLastIndex", args: []string{"create", "x", "--completions", "3", "--success-policy", "indexes=0-5"}, code: 2, want: []string{"names index 5, beyond the last (2)"}},
		{name: "SuccessPolicyCountZero", args: []string{"create", "x", "--completions", "3", "--success-policy", "count=0"}, code: 2, want: []string{"has count 0; it must be between 1 and 3"}},
		{name: "SuccessPolicyUnknownPart", args: []string{"create", "x", "--completions", "3", "--success-policy", "some=1"}, code: 2, want: []string{`unknown part "some=1"`, "indexes=0-3,5 and/or count=N"}},
		{name: "SuccessPolicyOnANonIndexedJob", args: []string{"create", "x", "--completions", "2", "--completion-mode", "NonIndexed", "--success-policy", "count=1"}, code: 2, want: []string{"success-policy"}},
		{name: "CompletionModeWithoutCompletions", args: []string{"create", "x", "--completion-mode", "NonIndexed"}, code: 2, want: []string{"completion-mode (NonIndexed) needs completions; set --completions K"}},
		{name: "CompletionModeUnknown", args: []string{"create", "x", "--completions", "3", "--completion-mode", "Sometimes"}, code: 2, want: []string{`--completion-mode "Sometimes": use Indexed or NonIndexed`}},
		// Redis URLs, passwords and reachability.
		{name: "RedisURLWrongScheme", args: []string{"--redis", "http://127.0.0.1:6379", "status", "photos"}, code: 2, want: []string{`bad Redis URL "http://127.0.0.1:6379"`, `unknown scheme "http"`, "accepted forms: redis://"}},
		{name: "RedisURLBadPort", args: []string{"--redis", "redis://127.0.0.1:notaport/0", "status", "photos"}, code: 2, want: []string{"bad Redis URL", `invalid port ":notaport"`, "accepted forms: redis://"}},
		{name: "RedisURLFromEnvironmentBad", env: []string{"WORKQ_REDIS_URL=garbage"}, args: []string{"list"}, code: 2, want: []string{`bad Redis URL "garbage": it has no scheme`, "accepted forms: redis://"}},
		{name: "WorkerRedisURLBad", worker: true, args: []string{"--redis", "mysql://x", "--job", "photos", "--", "true"}, code: 2, want: []string{`bad Redis URL "mysql://x"`, `unknown scheme "mysql"`, "accepted forms: redis://"}},
		{name: "RedisUnreachable", args: []string{"--redis", "redis://127.0.0.1:1/0", "status", "photos"}, code: 1, want: []string{"redis unavailable", "connection refused", "check that Redis runs"}},
		{name: "WorkerRedisUnreachable", worker: true, args: []string{"--redis", "redis://127.0.0.1:1/0", "--wait", "300ms", "--job", "photos", "--", "true"}, code: 1, want: []string{"waited 300ms (--wait) for job \"photos\"", "redis unavailable", "check that Redis runs"}},
		{name: "WrongPasswordInURL", locked: true, args: []string{"--redis", "redis://:wrong@" + lockedAddr + "/0", "status", "vault"}, code: 1, want: []string{"authentication failed", "check the password"}},
		{name: "WrongPasswordInEnvironment", locked: true, env: []string{"WORKQ_REDIS_PASSWORD=wrong"}, args: []string{"--redis", "redis://" + lockedAddr + "/0", "status", "vault"}, code: 1, want: []string{"authentication failed", "WORKQ_REDIS_PASSWORD"}},
		{name: "NoPassword", locked: true, args: []string{"--redis", "redis://" + lockedAddr + "/0", "push", "vault", "a"}, code: 1, want: []string{"NOAUTH", "authentication failed", "check the password"}},
		{name: "WorkerWrongPassword", locked: true, worker: true, args: []string{"--redis", "redis://:wrong@" + lockedAddr + "/0", "--wait", "300ms", "--job", "vault", "--", "true"}, code: 1, want: []string{"authentication failed"}},
		// Jobs that are not there or take no items.
		{name: "CreateDuplicate", args: []string{"create", "photos"}, code: 2, want: []string{`create "photos": job already exists`, "pick another name"}},
		{name: "StatusUnknownJobSuggests", args: []string{"status", "photo"}, code: 2, want: []string{`no such job: "photo"; did you mean "photos"?`}},
		{name: "PushUnknownJobSuggests", args: []string{"push", "photoss", "a"}, code: 2, want: []string{`did you mean "photos"?`}},
		{name: "SealUnknownJob", args: []string{"seal", "nothing-like-it"}, code: 2, want: []string{`no such job: "nothing-like-it"`, "`coordinator list` shows the 3 that exist"}, once: []string{"`coordinator list`"}},
		{name: "DeleteUnknownJob", args: []string{"delete", "phot"}, code: 2, want: []string{`did you mean "photos"?`}},
		{name: "RetryUnknownJob", args: []string{"retry", "closd"}, code: 2, want: []string{`did you mean "closed"?`}},
		{name: "SuspendUnknownJob", args: []string{"suspend", "fotos"}, code: 2, want: []string{`did you mean "photos"?`}},
		{name: "PushToSealedJob", args: []string{"push", "closed", "a"}, code: 2, want: []string{`"closed" takes no more items`, "create a new Job"}},
		{name: "PushToFinishedJob", args: []string{"push", "finished", "a"}, code: 2, want: []string{`"finished" is Complete`, "create a new Job"}, once: []string{"create a new Job"}},
		{name: "RetryFinishedJobWithoutReopen", args: []string{"retry", "finished"}, code: 2, want: []string{`retry dead items of "finished": job is finished`, "`coordinator retry finished --reopen`"}},
		{name: "SuspendFinishedJob", args: []string{"suspend", "finished"}, code: 2, want: []string{`suspend "finished": job is finished`}},
		{name: "ResumeFinishedJob", args: []string{"resume", "finished"}, code: 2, want: []string{`resume "finished": job is finished`}},
		{name: "WorkerJobNeverCreated", worker: true, args: []string{"--job", "ghost", "--wait", "300ms", "--", "true"}, code: 2, want: []string{`waited 300ms (--wait) for job "ghost"`, "no such job", "`coordinator create ghost` makes it"}},
		// Items.
		{name: "PushNoItems", args: []string{"push", "photos"}, code: 2, want: []string{"no items given", "-f -"}},
		{name: "PushArgumentsAndFile", args: []string{"push", "photos", "a", "-f", big}, code: 2, want: []string{"give items as arguments or with -f, not both"}},
		{name: "PushFileMissing", args: []string{"push", "photos", "-f", filepath.Join(f.dir, "missing.txt")}, code: 2, want: []string{"open items", "no such file"}},
		{name: "PushInvalidUTF8InLineMode", args: []string{"push", "photos", "-f", "-"}, stdin: []byte("ok\n\xff\xfe bad\n"), code: 2, want: []string{"item 2 is not valid UTF-8", "--null"}},
		{name: "PushBinaryInLineMode", args: []string{"push", "photos", "-f", "-"}, stdin: []byte("ok\nbin\x00ary\n"), code: 2, want: []string{"item 2 holds a NUL byte", "--null"}},
		{name: "PushEmptyLine", args: []string{"push", "photos", "-f", "-"}, stdin: []byte("a\n\nb\n"), code: 2, want: []string{"item 2 is empty", "--skip-empty"}},
		{name: "PushItemOneByteOverTheLimit", args: []string{"push", "photos", "-f", big}, code: 2, want: []string{"item 1 is larger than the limit of 1048576 bytes", "--max-item-bytes"}},
		{name: "PushArgumentOneByteOverTheLimit", args: []string{"push", "photos", "--max-item-bytes", "10", "a", "12345678901"}, code: 2, want: []string{"item 2 is larger than the limit of 10 bytes"}},
		{name: "PushOverTheLimitAfterGoodItems", args: []string{"push", "photos", "-f", "-"}, stdin: append(append([]byte("good\n"), atLimit...), append(bytes.Repeat([]byte("z"), items.DefaultMaxBytes+1), '\n')...), code: 2, want: []string{"item 3 is larger than the limit"}},
		{name: "PushEndlessStdinInterrupted", code: 1, want: []string{"interrupted while reading the input; nothing was pushed"}, run: endlessStdin},
		// Commands.
		{name: "WorkerNoCommand", worker: true, args: []string{"--job", "photos"}, code: 2, want: []string{"no command given", "put it after --"}},
		{name: "WorkerCommandMissing", worker: true, args: []string{"--job", "photos", "--", "no-such-program-anywhere"}, code: 2, want: []string{`command "no-such-program-anywhere" not found`, "PATH"}},
		{name: "WorkerCommandNotExecutable", worker: true, args: []string{"--job", "photos", "--", f.file(t, "notexec.sh", []byte("#!/bin/sh\n"))}, code: 2, want: []string{"cannot be run", "chmod +x"}},
		{name: "WorkerCommandIsADirectory", worker: true, args: []string{"--job", "photos", "--", f.dir}, code: 2, want: []string{"cannot be run"}},
		{name: "WorkerNoJob", worker: true, args: []string{"--", "true"}, code: 2, want: []string{"no Job given", "--job NAME", "WORKQ_JOB"}},
	}
}

// endlessStdin pushes from a generator that writes forever, and stops the
// push with SIGINT once it has read a good deal.
func endlessStdin(t *testing.T, f *fixture) testkit.Result {
	tmp := t.TempDir()
	gen := exec.Command("yes", "an-endless-item")
	out, err := gen.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, gen.Start())
	defer func() { _ = gen.Process.Kill(); _ = gen.Wait() }()
	push := testkit.Start(t, testkit.Command{Bin: f.bins.Coordinator, Args: []string{"push", "photos", "-f", "-"},
		Env: []string{"WORKQ_REDIS_URL=" + f.openURL, "TMPDIR=" + tmp}, Stdin: out})
	testkit.Eventually(t, 30*time.Second, "push reads the endless input", func() (bool, string) {
		m, _ := filepath.Glob(filepath.Join(tmp, "workq-push-*"))
		for _, p := range m {
			if st, err := os.Stat(p); err == nil && st.Size() > 8<<20 {
				return true, ""
			}
		}
		return false, fmt.Sprintf("spool files %v", m)
	})
	push.Signal(t, syscall.SIGINT)
	push.Wait(t, 30*time.Second)
	left, _ := filepath.Glob(filepath.Join(tmp, "workq-push-*"))
	require.Empty(t, left, "the spool file is removed")
	return push.Result()
}

func TestBadInputIsAnswered(t *testing.T) {
	redistest.Available(t)
	f := setup(t)
	all := cases(t, f)
	require.GreaterOrEqual(t, len(all), 30)
	for _, c := range all {
		t.Run(c.name, func(t *testing.T) {
			srv, pw := f.open, ""
			if c.locked {
				srv, pw = f.locked, password
			}
			before := snapshot(t, srv, pw)
			var r testkit.Result
			if c.run != nil {
				r = c.run(t, f)
			} else {
				bin := f.bins.Coordinator
				if c.worker {
					bin = f.bins.Worker
				}
				var stdin io.Reader
				if c.stdin != nil {
					stdin = bytes.NewReader(c.stdin)
				}
				r = testkit.Run(t, time.Minute, testkit.Command{Bin: bin, Args: c.args, Stdin: stdin,
					Env: append([]string{"WORKQ_REDIS_URL=" + f.openURL}, c.env...)})
			}
			require.Equal(t, c.code, r.Code, "exit code: %s", r)
			msg := strings.TrimSuffix(r.Stderr, "\n")
			if c.worker {
				// A worker that waits for Redis or the Job logs that it
				// waits (slog lines); its error is the last line.
				var rest []string
				for _, l := range strings.Split(msg, "\n") {
					if !strings.HasPrefix(l, "time=") {
						rest = append(rest, l)
					}
				}
				msg = strings.Join(rest, "\n")
			}
			require.NotEmpty(t, msg, "an error message: %s", r)
			require.NotContains(t, msg, "\n", "one line on stderr: %s", r)
			prefix := "coordinator: "
			if c.worker {
				prefix = "worker: "
			}
			require.True(t, strings.HasPrefix(msg, prefix), "the line names the program: %q", msg)
			for _, w := range c.want {
				require.Contains(t, msg, w)
			}
			require.Empty(t, r.Stdout, "nothing on stdout")
			require.Equal(t, before, snapshot(t, srv, pw), "the keys in Redis are as they were")
			for _, w := range c.once {
				require.Equal(t, 1, strings.Count(msg, w), "%q once in %q", w, msg)
			}
		})
	}
}
