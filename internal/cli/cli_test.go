package cli_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/cli"
	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

func TestExitCode(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		err  error
		want int
	}{
		{"Success", nil, cli.ExitOK},
		{"UsageError", cli.Usagef("--x is bad"), cli.ExitUsage},
		{"InvalidSpec", fmt.Errorf("create: %w", jobstate.ErrInvalidSpec), cli.ExitUsage},
		{"InvalidItem", fmt.Errorf("push: %w", queue.ErrInvalidItem), cli.ExitUsage},
		{"NoSuchJob", fmt.Errorf("status: %w", queue.ErrNoJob), cli.ExitUsage},
		{"Exists", queue.ErrExists, cli.ExitUsage},
		{"Sealed", queue.ErrSealed, cli.ExitUsage},
		{"Finished", queue.ErrFinished, cli.ExitUsage},
		{"BadURL", fmt.Errorf("x: %w", queue.ErrBadURL), cli.ExitUsage},
		{"JobFailedIsNoUsageError", fmt.Errorf("job x: %w", queue.ErrJobFailed), cli.ExitFailure},
		{"VanishedJobIsNoUsageError", fmt.Errorf("job x: %w", queue.ErrJobVanished), cli.ExitFailure},
		{"ReplacedJobIsNoUsageError", fmt.Errorf("job x: %w", queue.ErrReplaced), cli.ExitFailure},
		{"RedisDown", queue.ErrUnavailable, cli.ExitFailure},
		{"Other", errors.New("boom"), cli.ExitFailure},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, cli.ExitCode(tc.err))
		})
	}
}

func TestMessageSaysWhatToDo(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err  error
		hint string
	}{
		{fmt.Errorf("status of %q: %w", "x", queue.ErrNoJob), "coordinator list"},
		{fmt.Errorf("push: %w", queue.ErrSealed), "create a new Job"},
		{fmt.Errorf("push: %w", queue.ErrFinished), "create a new Job"},
		{fmt.Errorf("create: %w", queue.ErrExists), "coordinator delete NAME"},
		{fmt.Errorf("connect: %w: dial tcp: connection refused", queue.ErrUnavailable), "--redis (WORKQ_REDIS_URL)"},
		{fmt.Errorf("connect: %w: WRONGPASS", queue.ErrAuth), "WORKQ_REDIS_PASSWORD"},
		{fmt.Errorf("connect: %w: its maxmemory-policy is allkeys-lru", queue.ErrEviction), "maxmemory-policy noeviction"},
		{fmt.Errorf("push: %w", queue.ErrOutOfMemory), "maxmemory"},
		{fmt.Errorf("connect: %w: x509: certificate signed by unknown authority", queue.ErrUnavailable), "--redis-ca"},
	}
	for _, tc := range cases {
		msg := cli.Message(tc.err)
		require.True(t, strings.HasPrefix(msg, tc.err.Error()), "the error comes first: %q", msg)
		require.Contains(t, msg, tc.hint)
		require.NotContains(t, msg, "\n")
	}
	require.Equal(t, "boom", cli.Message(errors.New("boom")), "no hint for errors it does not know")
}

func TestMainPrintsOneLineAndTheExitCode(t *testing.T) {
	t.Parallel()
	root := &cobra.Command{Use: "coordinator"}
	root.AddCommand(&cobra.Command{Use: "status", RunE: func(*cobra.Command, []string) error { return queue.ErrNoJob }})
	root.AddCommand(&cobra.Command{Use: "worker", RunE: func(*cobra.Command, []string) error { return queue.ErrJobFailed }})
	run := func(args ...string) (int, string) {
		var stderr bytes.Buffer
		root.SetArgs(args)
		code := cli.Main(context.Background(), root, &stderr)
		return code, stderr.String()
	}
	code, out := run("stats")
	require.Equal(t, cli.ExitUsage, code)
	require.Equal(t, 1, strings.Count(out, "\n"), "one line: %q", out)
	require.Contains(t, out, "did you mean status?")
	code, out = run("status")
	require.Equal(t, cli.ExitUsage, code)
	require.True(t, strings.HasPrefix(out, "coordinator: no such job"), out)
	code, out = run("worker")
	require.Equal(t, cli.ExitFailure, code)
	require.True(t, strings.HasPrefix(out, "worker: "), "a worker speaks as one: %q", out)
}

func TestRedisOptions(t *testing.T) {
	t.Parallel()
	t.Run("ABadURLIsAUsageError", func(t *testing.T) {
		t.Parallel()
		r := cli.Redis{URL: "http://localhost"}
		_, err := r.Options()
		require.Equal(t, cli.ExitUsage, cli.ExitCode(err))
		require.ErrorIs(t, err, queue.ErrBadURL)
	})
	t.Run("TheCAMustBeAPEMFile", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		bad := filepath.Join(dir, "ca.pem")
		require.NoError(t, os.WriteFile(bad, []byte("not a certificate"), 0o600))
		r := cli.Redis{URL: "rediss://localhost:6380", CA: bad}
		_, err := r.Options()
		require.ErrorContains(t, err, "holds no PEM certificate")
		r.CA = filepath.Join(dir, "missing.pem")
		_, err = r.Options()
		require.ErrorContains(t, err, "--redis-ca")
	})
	t.Run("ClusterAndSentinelURLsAreAccepted", func(t *testing.T) {
		t.Parallel()
		for _, u := range []string{"redis://h1:7000?addr=h2:7001&addr=h3:7002", "redis+sentinel://s1:26379,s2:26379/mymaster"} {
			r := cli.Redis{URL: u}
			_, err := r.Options()
			require.NoError(t, err, u)
		}
	})
	t.Run("RedactedHidesThePassword", func(t *testing.T) {
		t.Parallel()
		r := cli.Redis{URL: "redis://user:s3cret@host:6379/0"}
		require.NotContains(t, r.Redacted(), "s3cret")
	})
}

func TestCheckName(t *testing.T) {
	t.Parallel()
	require.NoError(t, cli.CheckName("thumbs"))
	err := cli.CheckName("Bad_Name")
	require.Equal(t, cli.ExitUsage, cli.ExitCode(err))
	require.ErrorContains(t, err, "DNS label")
}
