package workercmd

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/cli"
	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

// runWorker runs the worker command with args and returns its error and
// output.
func runWorker(t *testing.T, args ...string) (err error, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := New("worker", &out, &errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true // as cli.Main does
	cmd.SetArgs(args)
	err = cmd.ExecuteContext(t.Context())
	return err, out.String(), errOut.String()
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		args []string
		want []string // the flag, and the fix
	}{
		{"NoJob", []string{"--job", "", "--", "true"}, []string{"--job NAME", "WORKQ_JOB"}},
		{"BadJobName", []string{"--job", "Bad_Name", "--", "true"}, []string{"--job", `"Bad_Name"`, "use lowercase letters"}},
		{"NoConcurrency", []string{"--job", "j", "-c", "0", "--", "true"}, []string{"--concurrency (0)", "such as --concurrency 4"}},
		{"NegativeBatchSize", []string{"--job", "j", "--batch-size", "-1", "--", "true"}, []string{"--batch-size (-1)", "between 0 (the Job's) and"}},
		{"HugeBatchSize", []string{"--job", "j", "--batch-size", fmt.Sprint(jobstate.MaxBatchSize + 1), "--", "true"}, []string{fmt.Sprintf("--batch-size (%d)", jobstate.MaxBatchSize+1), fmt.Sprintf("and %d", jobstate.MaxBatchSize)}},
		{"NegativeHeartbeat", []string{"--job", "j", "--heartbeat", "-1s", "--", "true"}, []string{"--heartbeat (-1s)", "such as 10s", "or 0"}},
		{"NegativeTimeout", []string{"--job", "j", "--timeout", "-1s", "--", "true"}, []string{"--timeout (-1s)", "such as 5m", "0 for no limit"}},
		{"NegativeGrace", []string{"--job", "j", "--grace", "-1s", "--", "true"}, []string{"--grace (-1s)", "such as 30s"}},
		{"NegativeWait", []string{"--job", "j", "--wait", "-1s", "--", "true"}, []string{"--wait (-1s)", "such as 1m"}},
		{"NullWithoutBatchExec", []string{"--job", "j", "--null", "--", "true"}, []string{"--null", "add --batch-exec, or drop --null"}},
		{"UnknownLogFormat", []string{"--job", "j", "--log-format", "xml", "--", "true"}, []string{`log format "xml": use text or json (--log-format)`}},
		{"UnknownLogLevel", []string{"--job", "j", "--log-level", "loud", "--", "true"}, []string{`log level "loud": use debug, info, warn or error (--log-level)`}},
		{"NoCommand", []string{"--job", "j"}, []string{"no command given", "put it after --"}},
		{"BracesWithBatchExec", []string{"--job", "j", "--batch-exec", "--", "echo", "x{}y"}, []string{"{}", "--batch-exec", "drop {} and read them from stdin"}},
		{"CommandNotFound", []string{"--job", "j", "--", "./no-such-program"}, []string{`"./no-such-program" cannot be run`, "check that it exists"}},
		{"CommandNotOnPath", []string{"--job", "j", "--", "no-such-program"}, []string{`"no-such-program" not found`, "give a path or a program on PATH"}},
		{"CommandIsADirectory", []string{"--job", "j", "--", "/"}, []string{`"/" cannot be run`, "is a directory"}},
		{"CommandNotExecutable", []string{"--job", "j", "--", "/etc/passwd"}, []string{`"/etc/passwd" cannot be run`, "chmod +x"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err, stdout, _ := runWorker(t, c.args...)
			require.Error(t, err)
			require.Equal(t, cli.ExitUsage, cli.ExitCode(err), "%v", err)
			for _, w := range c.want {
				require.Contains(t, err.Error(), w)
			}
			require.Empty(t, stdout)
		})
	}

	// withJob returns the URL of a new server holding Job j.
	withJob := func(t *testing.T) string {
		t.Helper()
		m := miniredis.RunT(t)
		url := "redis://" + m.Addr() + "/0"
		c, err := queue.Open(t.Context(), queue.Options{URL: url})
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		require.NoError(t, c.Create(t.Context(), "j", jobstate.Spec{Lease: jobstate.Duration(30 * time.Second)}))
		return url
	}

	t.Run("HeartbeatNotShorterThanTheLease", func(t *testing.T) {
		t.Parallel()
		err, _, _ := runWorker(t, "--job", "j", "--redis", withJob(t), "--heartbeat", "30s", "--", "true")
		require.Equal(t, cli.ExitUsage, cli.ExitCode(err), "%v", err)
		require.ErrorContains(t, err, "--heartbeat (30s) must be at most half the Job's lease (30s)")
		require.ErrorContains(t, err, "or 0 for a third of the lease")
	})

	t.Run("HeartbeatOverHalfTheLease", func(t *testing.T) {
		t.Parallel()
		// Two heartbeats per lease tell a Redis stall from a dead worker.
		url := withJob(t)
		err, _, _ := runWorker(t, "--job", "j", "--redis", url, "--heartbeat", "16s", "--", "true")
		require.Equal(t, cli.ExitUsage, cli.ExitCode(err), "%v", err)
		require.ErrorContains(t, err, "--heartbeat (16s) must be at most half the Job's lease (30s)")
	})

	t.Run("MetricsAddressCannotBeListenedOn", func(t *testing.T) {
		t.Parallel()
		err, _, _ := runWorker(t, "--job", "j", "--redis", withJob(t), "--metrics-listen", "256.0.0.1:1", "--", "true")
		require.Equal(t, cli.ExitUsage, cli.ExitCode(err), "%v", err)
		require.ErrorContains(t, err, "--metrics-listen 256.0.0.1:1")
		require.ErrorContains(t, err, "give a free address such as :9090")
	})
}

// TestPassRedisEnv runs a worker on a Job whose one item prints its
// environment. Not parallel: it sets the worker's environment.
func TestPassRedisEnv(t *testing.T) {
	m := miniredis.RunT(t)
	m.RequireAuth("s3cret")
	t.Setenv("WORKQ_REDIS_URL", "redis://"+m.Addr()+"/0")
	t.Setenv("WORKQ_REDIS_PASSWORD", "s3cret")
	t.Setenv("WORKQ_REDIS_CA", "")
	t.Setenv("WORKQ_REDIS_EXTRA", "x")
	c, err := queue.Open(t.Context(), queue.Options{URL: "redis://" + m.Addr() + "/0", Password: "s3cret"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	seq := 0
	// job makes a sealed Job of one item.
	job := func(t *testing.T) string {
		t.Helper()
		seq++
		name := fmt.Sprintf("env-%d", seq)
		require.NoError(t, c.Create(t.Context(), name, jobstate.Spec{}))
		_, err := c.Push(t.Context(), name, [][]byte{[]byte("x")}, queue.PushOptions{})
		require.NoError(t, err)
		sealed, err := c.Seal(t.Context(), name)
		require.NoError(t, err)
		require.True(t, sealed)
		return name
	}
	redisVars := func(env string) []string {
		var vars []string
		for line := range strings.Lines(env) {
			if k, _, _ := strings.Cut(line, "="); strings.HasPrefix(k, "WORKQ_REDIS_") {
				vars = append(vars, k)
			}
		}
		return vars
	}

	t.Run("NotPassedByDefault", func(t *testing.T) {
		name := job(t)
		err, stdout, _ := runWorker(t, "--job", name, "--", "env")
		require.NoError(t, err)
		require.Empty(t, redisVars(stdout), stdout)
		require.NotContains(t, stdout, "s3cret")
		for _, v := range []string{"WORKQ_JOB=" + name, "WORKQ_ITEM_ID=0", "WORKQ_ATTEMPT=1", "WORKQ_WORKER_ID="} {
			require.Contains(t, stdout, v)
		}
	})

	t.Run("PassedWithTheFlag", func(t *testing.T) {
		name := job(t)
		err, stdout, _ := runWorker(t, "--job", name, "--pass-redis-env", "--", "env")
		require.NoError(t, err)
		require.ElementsMatch(t, []string{"WORKQ_REDIS_URL", "WORKQ_REDIS_PASSWORD", "WORKQ_REDIS_CA", "WORKQ_REDIS_EXTRA"}, redisVars(stdout))
		require.Contains(t, stdout, "WORKQ_REDIS_PASSWORD=s3cret")
		require.Contains(t, stdout, "WORKQ_JOB="+name)
	})

	t.Run("PassedWithTheEnvironment", func(t *testing.T) {
		t.Setenv(passRedisEnvVar, "1")
		name := job(t)
		err, stdout, _ := runWorker(t, "--job", name, "--", "env")
		require.NoError(t, err)
		require.Contains(t, stdout, "WORKQ_REDIS_PASSWORD=s3cret")
	})

	t.Run("TheFlagWinsOverTheEnvironment", func(t *testing.T) {
		t.Setenv(passRedisEnvVar, "1")
		name := job(t)
		err, stdout, _ := runWorker(t, "--job", name, "--pass-redis-env=false", "--", "env")
		require.NoError(t, err)
		require.Empty(t, redisVars(stdout), stdout)
	})

	t.Run("ANonBooleanInTheEnvironmentIsAUsageError", func(t *testing.T) {
		t.Setenv(passRedisEnvVar, "sometimes")
		err, _, _ := runWorker(t, "--job", "any", "--", "env")
		require.Equal(t, cli.ExitUsage, cli.ExitCode(err), "%v", err)
		require.ErrorContains(t, err, `WORKQ_PASS_REDIS_ENV ("sometimes") is not a boolean; set it to 1 or 0, or unset it`)
	})
}
