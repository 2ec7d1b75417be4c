//go:build faults

package faults_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/redistest"
	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
)

// envCmd is itemCmd that also writes the item's whole environment to
// env.<worker>.<item>.
var envCmd = itemCmd(`env > "$OUT/env.$WORKQ_WORKER_ID.$1"`)

// scenarioCredentials is case 8 of Reliability II: item commands never see
// the worker's Redis credentials, whether the password comes in the URL
// or in WORKQ_REDIS_PASSWORD; and the embedded Redis of `coordinator run`
// refuses a client without its password.
func scenarioCredentials(t *testing.T) []row {
	return []row{itemsGetNoCredentials(t), embeddedNeedsPassword(t)}
}

func itemsGetNoCredentials(t *testing.T) row {
	redistest.Available(t)
	const password = "s3cret-Pa55word"
	srv, err := redistest.Start(t.TempDir(), "--requirepass", password)
	require.NoError(t, err)
	t.Cleanup(srv.Stop)
	e := newEnvOn(t, "redis://:"+password+"@"+srv.Addr+"/0", srv)
	ways := map[string][]string{
		"in-url":   {"WORKQ_REDIS_URL=redis://:" + password + "@" + srv.Addr + "/0"},
		"from-env": {"WORKQ_REDIS_URL=redis://" + srv.Addr + "/0", "WORKQ_REDIS_PASSWORD=" + password},
	}
	total := 0
	for name, env := range ways {
		// A Job per way, so that each way runs items.
		job := "secrets-" + name
		file, items := writeItems(t, name, 2)
		e.coord("create", job, "-f", file, "--seal")
		w := testkit.Start(t, testkit.Command{Name: name, Bin: e.bins.Worker,
			Args: append([]string{"--job", job, "--id", name}, envCmd...), Env: append(env, "OUT="+e.out)})
		require.Equal(t, 0, w.Wait(t, time.Minute), "%s", w)
		st := e.status(job)
		v := incarnation{Job: job, UID: st.UID, Items: items, MaxAttempts: jobstate.DefaultMaxAttempts}.check(st, e.dead(job), readRuns(t, e.out))
		require.Empty(t, v.Violations)
		total += len(items)
	}
	envs := itemEnvs(t, e.out)
	require.Len(t, envs, total, "every item wrote its environment")
	for name, env := range envs {
		require.NotContains(t, env, password, "%s: an item command sees the password", name)
		require.NotContains(t, env, "WORKQ_REDIS_", "%s: an item command sees the worker's Redis settings", name)
		require.Contains(t, env, "WORKQ_ITEM_ID=", "%s: the item's own settings are there", name)
	}
	return row{Scenario: "II.8a. item commands and the worker's Redis password (in the URL, or in `WORKQ_REDIS_PASSWORD`)",
		Items: int64(total), Succeeded: int64(total), Bound: -1,
		Note: "a Job per way, 2 items each: no item's environment holds the password nor any WORKQ_REDIS_* variable"}
}

func embeddedNeedsPassword(t *testing.T) row {
	bins := testkit.Build(t)
	out := t.TempDir()
	// Each item waits for the file go, so that run (and its Redis) is
	// there while the test knocks.
	cmd := itemCmd(`while [ ! -e "$OUT/go" ]; do sleep 0.05; done; env > "$OUT/env.$WORKQ_WORKER_ID.$1"`)
	co := testkit.Start(t, testkit.Command{Name: "run", Bin: bins.Coordinator,
		Args: append([]string{"run", "--job", "emb", "-p", "1", "e-1", "e-2"}, cmd...), Env: []string{"OUT=" + out}})
	e := &env{t: t, out: out}
	e.waitLog("an item runs", time.Minute, func(r run) bool { return true }, co)

	// The worker run started has the embedded Redis's URL, password
	// included, in its environment; that is how the test learns it.
	worker := childWorker(t, co.Pid())
	raw := procEnv(t, worker)["WORKQ_REDIS_URL"]
	u, err := url.Parse(raw)
	require.NoError(t, err, "run gives its workers the embedded Redis's URL")
	password, ok := u.User.Password()
	require.True(t, ok && password != "", "the embedded Redis has a password")
	ports, err := testkit.ListenPorts(co.Pid())
	require.NoError(t, err)
	require.Contains(t, ports, mustPort(t, u.Port()), "run itself listens on the URL's port")

	knock := func(pw string) error {
		rdb := redis.NewClient(&redis.Options{Addr: u.Host, Password: pw, MaxRetries: -1})
		defer rdb.Close()
		_, err := call(func(ctx context.Context) ([]string, error) { return rdb.Keys(ctx, "*").Result() })
		return err
	}
	noAuth, wrong := knock(""), knock("not-"+password)
	require.ErrorContains(t, noAuth, "NOAUTH", "no password: refused")
	require.Error(t, wrong, "a wrong password: refused")
	require.NoError(t, knock(password), "its own password opens it")

	require.NoError(t, os.WriteFile(filepath.Join(out, "go"), nil, 0o644))
	require.Equal(t, 0, co.Wait(t, time.Minute), "%s", co)
	for name, env := range itemEnvs(t, out) {
		require.NotContains(t, env, password, "%s: an item command of run sees the password", name)
		require.NotContains(t, env, "WORKQ_REDIS_", "%s", name)
	}
	return row{Scenario: "II.8b. the embedded Redis of `coordinator run`", Items: 2, Succeeded: 2, Bound: -1,
		Note: fmt.Sprintf("a random password of %d characters; without it: %q; with a wrong one: %q; item commands do not see it", len(password), noAuth, wrong)}
}

// itemEnvs reads the env.* files that item commands wrote, by name.
func itemEnvs(t *testing.T, dir string) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "env.*"))
	require.NoError(t, err)
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		out[filepath.Base(f)] = string(b)
	}
	return out
}

// childWorker returns the pid of the worker process that pid started.
func childWorker(t *testing.T, pid int) int {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	require.NoError(t, err)
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, c := range strings.Fields(string(b)) {
			child, err := strconv.Atoi(c)
			require.NoError(t, err)
			if _, ok := procEnv(t, child)["WORKQ_REDIS_URL"]; ok {
				return child
			}
		}
	}
	t.Fatalf("process %d has no child with WORKQ_REDIS_URL in its environment", pid)
	return 0
}

// procEnv reads a process's environment from /proc.
func procEnv(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	require.NoError(t, err)
	m := map[string]string{}
	for _, kv := range strings.Split(string(b), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

func mustPort(t *testing.T, s string) int {
	t.Helper()
	p, err := strconv.Atoi(s)
	require.NoError(t, err)
	return p
}
