package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/cli"
	"github.com/workq/workq/pkg/queue"
)

// runCoordinator runs the coordinator command with args and returns its
// stdout, its stderr and its error.
func runCoordinator(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	root := newRootCmd(deps{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr})
	root.SetArgs(args)
	err := root.ExecuteContext(t.Context())
	return stdout.String(), stderr.String(), err
}

func TestMan(t *testing.T) {
	t.Parallel()

	t.Run("WritesAPagePerCommandOfCoordinatorAndWorker", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "man", "man1") // created by the command
		stdout, stderr, err := runCoordinator(t, "man", dir)
		require.NoError(t, err, stderr)

		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		var files []string
		for _, e := range entries {
			files = append(files, e.Name())
		}
		for _, want := range []string{"coordinator.1", "coordinator-create.1", "coordinator-push.1", "coordinator-serve.1",
			"coordinator-run.1", "coordinator-completion-bash.1", "coordinator-man.1", "worker.1"} {
			require.Contains(t, files, want)
		}
		require.NotContains(t, files, "coordinator-worker.1", "the hidden worker subcommand has no page of its own: worker.1 is the worker's")

		listed := strings.Fields(stdout)
		slices.Sort(listed)
		var paths []string
		for _, f := range files {
			paths = append(paths, filepath.Join(dir, f))
		}
		require.Equal(t, paths, listed, "stdout lists every page written, and only those")
		require.Contains(t, stderr, fmt.Sprintf("wrote %d man pages into %s", len(files), dir))

		read := func(name string) string {
			t.Helper()
			data, err := os.ReadFile(filepath.Join(dir, name))
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(string(data), ".nh\n.TH "), "%s is a man page (roff)", name)
			return string(data)
		}
		pages := map[string][]string{
			"coordinator.1": {`.TH "COORDINATOR" "1"`, `\fB--redis\fP="redis://127.0.0.1:6379/0"`, "coordinator-serve(1)", "workq manual"},
			"coordinator-create.1": {`\fB--parallelism\fP`, `\fB--completions\fP`, `\fB--if-not-exists\fP`,
				`\fB--completion-mode\fP`, `\fB--failure-policy\fP`, `\fB--success-policy\fP`, `\fB--suspend\fP`},
			"coordinator-retry.1": {`\fB--reopen\fP`},
			"coordinator-push.1":  {`\fB--seal\fP`, `\fB--null\fP`, `\fB--stream\fP`},
			"coordinator-serve.1": {`\fB--listen\fP=":8080"`, `\fB--token\fP`, "/healthz"},
			"worker.1":            {`.TH "WORKER" "1"`, `\fB--concurrency\fP`, `\fB--batch-exec\fP`, `\fB--wait\fP`, `\fB--redis\fP`, `\fB--results\fP`},
		}
		for name, wants := range pages {
			text := read(name)
			for _, want := range wants {
				require.Contains(t, text, want, name)
			}
			require.NotContains(t, text, "Auto generated", name)
		}
		require.NotContains(t, read("worker.1"), "framed-output", "hidden flags stay out of the pages")

		// Every `coordinator X` a page names (in bold) has a page.
		named := map[string][]string{}
		ref := regexp.MustCompile(`\\fBcoordinator ([a-z][a-z-]*)`)
		for _, f := range files {
			for _, m := range ref.FindAllStringSubmatch(read(f), -1) {
				named[m[1]] = append(named[m[1]], f)
			}
		}
		t.Run("EveryCommandThePagesNameExists", func(t *testing.T) {
			require.Contains(t, named, "retry", "the check finds references")
			missing := func(skip string) []string {
				var out []string
				for cmd, in := range named {
					if cmd != skip && !slices.Contains(files, "coordinator-"+cmd+".1") {
						out = append(out, fmt.Sprintf("coordinator %s (named in %v)", cmd, in))
					}
				}
				slices.Sort(out)
				return out
			}
			require.Empty(t, missing("results"))
			require.Empty(t, missing(""))
		})
	})

	t.Run("ADirectoryThatIsAFileIsAUsageError", func(t *testing.T) {
		t.Parallel()
		file := filepath.Join(t.TempDir(), "file")
		require.NoError(t, os.WriteFile(file, nil, 0o644))
		_, _, err := runCoordinator(t, "man", file)
		require.Error(t, err)
		require.Equal(t, 2, cli.ExitCode(err))
		require.Contains(t, err.Error(), "name a directory you can write")
	})

	t.Run("NeedsExactlyOneDirectory", func(t *testing.T) {
		t.Parallel()
		_, _, err := runCoordinator(t, "man")
		require.Error(t, err)
		_, _, err = runCoordinator(t, "man", "a", "b")
		require.Error(t, err)
	})

	t.Run("ShowsNoDefaultTakenFromTheEnvironment", func(t *testing.T) {
		t.Parallel()
		// Flags as the commands define them when WORKQ_* variables are set.
		cmd := &cobra.Command{Use: "x", Run: func(*cobra.Command, []string) {}}
		f := cmd.Flags()
		f.String("token", "s3cret-token", "bearer token (env WORKQ_TOKEN)")
		f.String("redis", "redis://:s3cret-pass@redis:6379/0", "Redis URL (env WORKQ_REDIS_URL; the password may also come from WORKQ_REDIS_PASSWORD)")
		f.String("job", "thumbs", "the Job (env WORKQ_JOB)")
		f.String("listen", ":8080", "HTTP address")
		sub := &cobra.Command{Use: "sub", Run: func(*cobra.Command, []string) {}}
		sub.Flags().String("id", "worker-7", "worker id (env WORKQ_WORKER_ID; default host-pid-random)")
		cmd.AddCommand(sub)

		env := map[string]string{"WORKQ_TOKEN": "s3cret-token", "WORKQ_REDIS_URL": "redis://:s3cret-pass@redis:6379/0", "WORKQ_WORKER_ID": "worker-7"}
		scrubEnvDefaults(cmd, func(k string) string { return env[k] })

		require.Empty(t, f.Lookup("token").DefValue)
		require.Equal(t, queue.DefaultURL, f.Lookup("redis").DefValue)
		require.Equal(t, "thumbs", f.Lookup("job").DefValue, "WORKQ_JOB is not set: the default is the command's own")
		require.Equal(t, ":8080", f.Lookup("listen").DefValue)
		require.Empty(t, sub.Flags().Lookup("id").DefValue, "subcommands are scrubbed too")

		var page bytes.Buffer
		require.NoError(t, doc.GenMan(cmd, &doc.GenManHeader{}, &page))
		require.NotContains(t, page.String(), "s3cret")
	})
}
