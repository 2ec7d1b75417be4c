//go:build compose

package compose

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/testkit"
)

// jobStatus is the part of `coordinator status NAME -o json` that the test reads.
type jobStatus struct {
	Name   string `json:"name"`
	Phase  string `json:"phase"`
	Sealed bool   `json:"sealed"`
	Items  struct {
		Total          int `json:"total"`
		Pending        int `json:"pending"`
		Leased         int `json:"leased"`
		Retrying       int `json:"retrying"`
		Succeeded      int `json:"succeeded"`
		Dead           int `json:"dead"`
		FailedAttempts int `json:"failedAttempts"`
	} `json:"items"`
	Active     int `json:"active"`
	Succeeded  int `json:"succeeded"`
	Failed     int `json:"failed"`
	Conditions []struct {
		Type    string `json:"type"`
		Status  string `json:"status"`
		Reason  string `json:"reason"`
		Message string `json:"message"`
	} `json:"conditions"`
}

func (s jobStatus) String() string {
	return fmt.Sprintf("%s phase=%s sealed=%t items(total=%d pending=%d leased=%d retrying=%d succeeded=%d dead=%d) workers(active=%d succeeded=%d failed=%d)",
		s.Name, s.Phase, s.Sealed, s.Items.Total, s.Items.Pending, s.Items.Leased, s.Items.Retrying,
		s.Items.Succeeded, s.Items.Dead, s.Active, s.Succeeded, s.Failed)
}

// containerState is one container of the stack, from docker inspect.
type containerState struct {
	ID       string
	Name     string
	Status   string // created, running, restarting, exited, ...
	ExitCode int
	Restarts int
}

// stack is one Compose project made from the repository's docker-compose.yml.
type stack struct {
	compose []string
	root    string
	file    string
	project string
	env     map[string]string // WORKQ_* settings given to every Compose command
	// built is the output of the build script's run that made the images.
	built string
}

func newStack(t *testing.T) *stack {
	t.Helper()
	requireDockerEngine(t)
	compose := composeCommand(t)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	file := filepath.Join(root, "docker-compose.yml")
	require.FileExists(t, file)

	project := fmt.Sprintf("workqtest%d", time.Now().UnixNano()%1_000_000_000)
	image := "workq-compose-test:" + project
	redisImage := "workq-compose-test-redis:" + project
	built := buildImages(t, root, image, redisImage)

	s := &stack{
		compose: compose,
		root:    root,
		file:    file,
		project: project,
		built:   built,
		env: map[string]string{
			"WORKQ_IMAGE":          image,
			"WORKQ_REDIS_IMAGE":    redisImage,
			"WORKQ_REDIS_PASSWORD": "test-" + project,
			"WORKQ_HTTP_PORT":      strconv.Itoa(freePort(t)),
			"WORKQ_WORKERS":        "3",
			"WORKQ_CONCURRENCY":    "1",
			"WORKQ_JOB":            "example",
		},
	}
	t.Logf("compose project %s with %s, images %s and %s", project, strings.Join(compose, " "), image, redisImage)
	t.Cleanup(func() { s.down(t) })
	t.Cleanup(func() {
		if t.Failed() {
			s.dumpLogs(t)
		}
	})
	return s
}

// environ is the process environment without the caller's WORKQ_* and
// COMPOSE_* settings, plus the stack's.
func (s *stack) environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "WORKQ_") || strings.HasPrefix(kv, "COMPOSE_") {
			continue
		}
		env = append(env, kv)
	}
	for k, v := range s.env {
		env = append(env, k+"="+v)
	}
	return env
}

// run runs a Compose command on the stack.
func (s *stack) run(timeout time.Duration, stdin io.Reader, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	all := append(append([]string{}, s.compose[1:]...),
		"--project-name", s.project, "--file", s.file, "--project-directory", s.root)
	return run(ctx, s.root, s.environ(), stdin, s.compose[0], append(all, args...)...)
}

// must runs a Compose command and fails the test when it fails.
func (s *stack) must(t *testing.T, timeout time.Duration, stdin io.Reader, args ...string) string {
	t.Helper()
	out, err := s.run(timeout, stdin, args...)
	require.NoError(t, err)
	return out
}

func (s *stack) down(t *testing.T) {
	if out, err := s.run(3*time.Minute, nil, "down", "--volumes", "--remove-orphans", "--timeout", "5"); err != nil {
		t.Logf("compose down: %v\n%s", err, out)
	}
}

func (s *stack) dumpLogs(t *testing.T) {
	for _, service := range []string{"redis", "coordinator", "loader", "worker"} {
		out, err := s.run(time.Minute, nil, "logs", "--no-color", "--tail", "60", service)
		t.Logf("logs of %s (err %v):\n%s", service, err, out)
	}
	states, err := s.containers("")
	t.Logf("containers (err %v): %+v", err, states)
}

// containers lists the stack's containers of one service ("" for all),
// running or not.
func (s *stack) containers(service string) ([]containerState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := []string{"ps", "--all", "--quiet", "--no-trunc", "--filter", "label=com.docker.compose.project=" + s.project}
	if service != "" {
		args = append(args, "--filter", "label=com.docker.compose.service="+service)
	}
	out, err := run(ctx, "", nil, nil, "docker", args...)
	if err != nil {
		return nil, err
	}
	ids := strings.Fields(out)
	if len(ids) == 0 {
		return nil, nil
	}
	out, err = run(ctx, "", nil, nil, "docker", append([]string{"inspect", "--format",
		"{{.Id}}|{{.Name}}|{{.State.Status}}|{{.State.ExitCode}}|{{.RestartCount}}"}, ids...)...)
	if err != nil {
		return nil, err
	}
	var states []containerState
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 5 {
			return nil, fmt.Errorf("docker inspect printed %q", line)
		}
		code, _ := strconv.Atoi(f[3])
		restarts, _ := strconv.Atoi(f[4])
		states = append(states, containerState{ID: f[0], Name: strings.TrimPrefix(f[1], "/"), Status: f[2], ExitCode: code, Restarts: restarts})
	}
	return states, nil
}

// running returns the IDs of the service's running containers.
func (s *stack) running(t *testing.T, service string) []string {
	t.Helper()
	states, err := s.containers(service)
	require.NoError(t, err)
	var ids []string
	for _, c := range states {
		if c.Status == "running" {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

// waitExited waits until the service has want containers, all exited.
func (s *stack) waitExited(t *testing.T, service string, want int, timeout time.Duration) []containerState {
	t.Helper()
	var last []containerState
	waitFor(t, timeout, fmt.Sprintf("%d %s containers to exit", want, service), func() (bool, string) {
		states, err := s.containers(service)
		if err != nil {
			return false, err.Error()
		}
		last = states
		exited := 0
		for _, c := range states {
			if c.Status == "exited" {
				exited++
			}
		}
		return len(states) == want && exited == want, fmt.Sprintf("%+v", states)
	})
	return last
}

// exec runs a command in the service's first running container.
func (s *stack) exec(service string, cmd ...string) (string, error) {
	states, err := s.containers(service)
	if err != nil {
		return "", err
	}
	var ids []string
	for _, c := range states {
		if c.Status == "running" {
			ids = append(ids, c.ID)
		}
	}
	if len(ids) == 0 {
		return "", fmt.Errorf("no running %s container", service)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return run(ctx, "", nil, nil, "docker", append([]string{"exec", ids[0]}, cmd...)...)
}

// status runs `coordinator status NAME -o json` in the coordinator container.
func (s *stack) status(job string) (jobStatus, error) {
	var st jobStatus
	out, err := s.exec("coordinator", "coordinator", "status", job, "-o", "json")
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, fmt.Errorf("decoding status of %s: %w: %s", job, err, out)
	}
	return st, nil
}

// waitStatus polls the Job's status until ok accepts it.
func (s *stack) waitStatus(t *testing.T, job string, timeout time.Duration, what string, ok func(jobStatus) bool) jobStatus {
	t.Helper()
	var last jobStatus
	waitFor(t, timeout, fmt.Sprintf("job %s: %s", job, what), func() (bool, string) {
		st, err := s.status(job)
		if err != nil {
			return false, err.Error()
		}
		last = st
		require.NotEqual(t, "Failed", st.Phase, "job %s failed: %s %+v", job, st, st.Conditions)
		return ok(st), st.String()
	})
	return last
}

func (s *stack) waitComplete(t *testing.T, job string, timeout time.Duration) jobStatus {
	t.Helper()
	return s.waitStatus(t, job, timeout, "phase Complete", func(st jobStatus) bool { return st.Phase == "Complete" })
}

// createJob creates a sealed Job from items, piped into `compose run -T`.
func (s *stack) createJob(t *testing.T, name string, items []string, flags ...string) {
	t.Helper()
	args := append([]string{"run", "--rm", "-T", "coordinator", "create", name}, flags...)
	args = append(args, "-f", "-", "--seal")
	s.must(t, 3*time.Minute, strings.NewReader(strings.Join(items, "\n")+"\n"), args...)
}

// waitFor polls cond every half second (each poll runs Compose commands)
// until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	testkit.Poll(t, 500*time.Millisecond, timeout, what, cond)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func makeItems(prefix string, n int) []string {
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf("%s%05d", prefix, i)
	}
	return items
}

func TestCompose(t *testing.T) {
	s := newStack(t)

	words, err := os.ReadFile(filepath.Join(s.root, "examples", "words.txt"))
	require.NoError(t, err)
	wordCount := len(strings.Fields(string(words)))

	t.Run("TheBuildScriptMakesBothImagesWithoutARegistry", func(t *testing.T) {
		image, redisImage := s.env["WORKQ_IMAGE"], s.env["WORKQ_REDIS_IMAGE"]
		require.Contains(t, s.built, image+": built", s.built)
		require.Contains(t, s.built, redisImage+": built", s.built)
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
		defer cancel()
		inspect := func(tag string) (id, user string) {
			t.Helper()
			out, err := run(ctx, "", nil, nil, "docker", "image", "inspect", "--format", "{{.Id}} {{.Config.User}}", tag)
			require.NoError(t, err)
			id, user, _ = strings.Cut(strings.TrimSpace(out), " ")
			return id, user
		}
		workqID, workqUser := inspect(image)
		redisID, redisUser := inspect(redisImage)
		require.Equal(t, "10001:10001", workqUser)
		require.Equal(t, "999:999", redisUser)

		again, err := runBuildScript(t, s.root, image, redisImage, "--no-apt")
		require.NoError(t, err)
		require.Contains(t, again, image+": up to date", "a second run with nothing changed imports nothing:\n%s", again)
		require.Contains(t, again, redisImage+": up to date", again)
		id, _ := inspect(image)
		require.Equal(t, workqID, id)
		id, _ = inspect(redisImage)
		require.Equal(t, redisID, id)

		docker := func(stdin io.Reader, tag string, args ...string) string {
			t.Helper()
			out, err := run(ctx, "", nil, stdin, "docker", append([]string{"run", "--rm", "-i", tag}, args...)...)
			require.NoError(t, err)
			return out
		}
		// Running the binaries FROM scratch shows that they are static.
		require.Contains(t, docker(nil, image, "coordinator", "--help"), "serve")
		require.Contains(t, docker(nil, image, "worker", "--help"), "--job")
		require.Equal(t, "kaleidoscope: 12 letters\n", docker(strings.NewReader("kaleidoscope\n"), image, "/usr/share/workq/examples/wordlen.sh"))
		require.Contains(t, docker(nil, redisImage, "redis-server", "--version"), "Redis server v=")
		// The Kubernetes manifests' probes and init containers run these.
		require.Equal(t, "ok\n", docker(nil, redisImage, "sh", "-c", "redis-cli --version | grep -q '^redis-cli ' && sleep 0 && echo ok"))
	})

	t.Run("UpRunsTheExampleJobToCompletion", func(t *testing.T) {
		start := time.Now()
		s.must(t, 5*time.Minute, nil, "up", "--detach", "--no-build")

		loader := s.waitExited(t, "loader", 1, 2*time.Minute)
		require.Equal(t, 0, loader[0].ExitCode, "the loader should exit 0")

		st := s.waitComplete(t, "example", 3*time.Minute)
		require.Equal(t, wordCount, st.Items.Total, "every word of examples/words.txt is an item: %s", st)
		require.Equal(t, wordCount, st.Items.Succeeded, st.String())
		require.Zero(t, st.Items.Dead, st.String())

		workers := s.waitExited(t, "worker", 3, 2*time.Minute)
		for _, w := range workers {
			require.Equal(t, 0, w.ExitCode, "worker %s should exit 0", w.Name)
			require.Zero(t, w.Restarts, "worker %s should not have been restarted: it waits for Redis and its Job by itself", w.Name)
		}

		logs := s.must(t, time.Minute, nil, "logs", "--no-color", "worker")
		require.Contains(t, logs, "kaleidoscope: 12 letters", "the workers' logs show the example command's output")
		logs = s.must(t, time.Minute, nil, "logs", "--no-color", "coordinator")
		require.True(t, hasLine(logs, "example", "Complete"), "the coordinator's logs say that the example Job is Complete:\n%s", logs)

		resp, err := http.Get("http://127.0.0.1:" + s.env["WORKQ_HTTP_PORT"] + "/healthz")
		require.NoError(t, err, "the coordinator's HTTP port is published")
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "ok", strings.TrimSpace(string(body)))
		resp, err = http.Get("http://127.0.0.1:" + s.env["WORKQ_HTTP_PORT"] + "/livez")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		resp, err = http.Get("http://127.0.0.1:" + s.env["WORKQ_HTTP_PORT"] + "/api/jobs/example/work")
		require.NoError(t, err)
		var work struct {
			Work    *int   `json:"work"`
			Drained bool   `json:"drained"`
			Phase   string `json:"phase"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&work))
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.NotNil(t, work.Work, "the answer has the number that KEDA reads")
		require.Zero(t, *work.Work, "a Complete Job has no work left for an autoscaler")
		require.True(t, work.Drained)
		require.Equal(t, "Complete", work.Phase)

		redis := s.running(t, "redis")
		require.Len(t, redis, 1)
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		ports, err := run(ctx, "", nil, nil, "docker", "port", redis[0])
		require.NoError(t, err)
		require.Empty(t, strings.TrimSpace(ports), "Redis is not published on the host")
		t.Logf("example Job of %d items Complete, 3 workers exited 0, in %s", wordCount, time.Since(start).Round(time.Second))
	})

	t.Run("ScalingUpAndKillingWorkersMidRunLosesNothing", func(t *testing.T) {
		const job, n = "big", 20000
		start := time.Now()
		s.env["WORKQ_JOB"] = job
		s.env["WORKQ_CONCURRENCY"] = "4"
		s.createJob(t, job, makeItems("item", n), "--parallelism", "6")
		s.must(t, 5*time.Minute, nil, "up", "--detach", "--no-build")
		s.waitStatus(t, job, 3*time.Minute, "1000 items succeeded", func(st jobStatus) bool { return st.Items.Succeeded >= 1000 })

		s.must(t, 5*time.Minute, nil, "up", "--detach", "--no-build", "--scale", "worker=6")
		var running []string
		waitFor(t, 2*time.Minute, "6 running workers", func() (bool, string) {
			running = s.running(t, "worker")
			return len(running) == 6, fmt.Sprintf("%d running", len(running))
		})
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		metrics, err := run(ctx, "", nil, nil, "docker", "exec", running[2], "wget", "-q", "-O", "-", "http://127.0.0.1:9090/metrics")
		require.NoError(t, err, "a worker serves its metrics on :9090, where the monitoring profile scrapes them")
		require.Contains(t, metrics, "workq_")
		_, err = run(ctx, "", nil, nil, "docker", "kill", running[0], running[1])
		require.NoError(t, err)
		mid, err := s.status(job)
		require.NoError(t, err)
		require.Less(t, mid.Items.Succeeded, n, "the workers were killed mid-run: %s", mid)
		t.Logf("killed 2 of 6 workers at %s", mid)

		st := s.waitComplete(t, job, 6*time.Minute)
		require.Equal(t, n, st.Items.Total, st.String())
		require.Equal(t, n, st.Items.Succeeded, "every item succeeded exactly once in the accounting: %s", st)
		require.Zero(t, st.Items.Dead, st.String())

		killed := map[string]bool{running[0]: true, running[1]: true}
		for _, w := range s.waitExited(t, "worker", 6, 2*time.Minute) {
			if killed[w.ID] {
				require.Equal(t, 137, w.ExitCode, "worker %s was killed", w.Name)
			} else {
				require.Equal(t, 0, w.ExitCode, "worker %s should exit 0", w.Name)
			}
		}
		t.Logf("%d items Complete with 6 workers, 2 killed, in %s: %s", n, time.Since(start).Round(time.Second), st)
	})

	t.Run("RestartingRedisMidRunLosesNothing", func(t *testing.T) {
		const job, n = "restart", 5000
		start := time.Now()
		out, err := s.exec("redis", "redis-cli", "config", "get", "appendonly")
		require.NoError(t, err)
		require.Contains(t, out, "yes", "Redis runs with the AOF on")

		s.env["WORKQ_JOB"] = job
		s.createJob(t, job, makeItems("word", n), "--parallelism", "3")
		s.must(t, 5*time.Minute, nil, "up", "--detach", "--no-build", "--scale", "worker=3")
		mid := s.waitStatus(t, job, 3*time.Minute, "500 items succeeded", func(st jobStatus) bool { return st.Items.Succeeded >= 500 })
		require.Less(t, mid.Items.Succeeded, n, "Redis restarts mid-run: %s", mid)
		s.must(t, 3*time.Minute, nil, "restart", "redis")
		t.Logf("restarted Redis at %s", mid)

		st := s.waitComplete(t, job, 5*time.Minute)
		require.Equal(t, n, st.Items.Total, st.String())
		require.Equal(t, n, st.Items.Succeeded, st.String())
		require.Zero(t, st.Items.Dead, st.String())
		for _, w := range s.waitExited(t, "worker", 3, 2*time.Minute) {
			require.Equal(t, 0, w.ExitCode, "worker %s should exit 0", w.Name)
		}

		// The Jobs that finished before the restart are still there.
		for name, total := range map[string]int{"example": wordCount, "big": 20000} {
			old, err := s.status(name)
			require.NoError(t, err)
			require.Equal(t, "Complete", old.Phase, old.String())
			require.Equal(t, total, old.Items.Succeeded, old.String())
		}
		t.Logf("%d items Complete across a Redis restart in %s: %s", n, time.Since(start).Round(time.Second), st)
	})
}

// hasLine reports whether one line of text holds every word.
func hasLine(text string, words ...string) bool {
	for _, line := range strings.Split(text, "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			return true
		}
	}
	return false
}
