package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/workq/workq/internal/redistest"
)

// redisEnv is the Redis the bench runs against: one it started, or one the
// user named with --redis.
type redisEnv struct {
	url    string
	server *redistest.Server // nil with --redis
	rdb    *redis.Client
}

// startRedis starts redis-server on a free loopback port, or connects to
// url. A named Redis must hold no keys (every run flushes its db) unless
// flush is set.
func startRedis(ctx context.Context, url string, flush bool) (*redisEnv, error) {
	e := &redisEnv{url: url}
	if url == "" {
		if _, err := exec.LookPath("redis-server"); err != nil {
			return nil, errors.New("redis-server is not installed: install it with `apt-get install redis-server` (Debian/Ubuntu), or pass --redis URL of a Redis the bench may flush")
		}
		s, err := redistest.Start("")
		if err != nil {
			return nil, fmt.Errorf("start redis-server: %w", err)
		}
		e.server = s
		e.url = s.URL()
	}
	opt, err := redis.ParseURL(e.url)
	if err != nil {
		e.close()
		return nil, fmt.Errorf("--redis %q: %w", url, err)
	}
	e.rdb = redis.NewClient(opt)
	if err := e.rdb.Ping(ctx).Err(); err != nil {
		e.close()
		return nil, fmt.Errorf("connect to %s: %w", e.url, err)
	}
	if e.server == nil && !flush {
		n, err := e.rdb.DBSize(ctx).Result()
		if err != nil {
			e.close()
			return nil, fmt.Errorf("dbsize: %w", err)
		}
		if n > 0 {
			e.close()
			return nil, fmt.Errorf("the Redis at --redis holds %d keys and every bench run flushes its db; use an empty db, or pass --flushdb to allow it", n)
		}
	}
	return e, nil
}

func (e *redisEnv) close() {
	if e.rdb != nil {
		_ = e.rdb.Close()
	}
	if e.server != nil {
		e.server.Stop()
		_ = os.RemoveAll(e.server.Dir)
	}
}

// reset empties the db and the command statistics between runs.
func (e *redisEnv) reset(ctx context.Context) error {
	if err := e.rdb.FlushDB(ctx).Err(); err != nil {
		return fmt.Errorf("flushdb: %w", err)
	}
	return e.rdb.ConfigResetStat(ctx).Err()
}

// info returns the fields of INFO section.
func (e *redisEnv) info(ctx context.Context, section string) (map[string]string, error) {
	s, err := e.rdb.Info(ctx, section).Result()
	if err != nil {
		return nil, fmt.Errorf("info %s: %w", section, err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if ok {
			out[k] = v
		}
	}
	return out, nil
}

// usedMemory is INFO memory used_memory, in bytes.
func (e *redisEnv) usedMemory(ctx context.Context) (int64, error) {
	m, err := e.info(ctx, "memory")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(m["used_memory"], 10, 64)
}

// dataMemory is INFO memory used_memory less mem_clients_normal: what
// Redis holds for its data, without the clients' query and output
// buffers, which a pipelined push leaves large for a while (a few hundred
// KiB over a few connections, as much as 14 B an item over 20 000 items).
func (e *redisEnv) dataMemory(ctx context.Context) (int64, error) {
	m, err := e.info(ctx, "memory")
	if err != nil {
		return 0, err
	}
	used, err := strconv.ParseInt(m["used_memory"], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("info memory: used_memory %q: %w", m["used_memory"], err)
	}
	clients, err := strconv.ParseInt(m["mem_clients_normal"], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("info memory: mem_clients_normal %q: %w", m["mem_clients_normal"], err)
	}
	return used - clients, nil
}

// cpuSeconds is the Redis process's CPU time so far: used_cpu_sys +
// used_cpu_user of INFO cpu.
func (e *redisEnv) cpuSeconds(ctx context.Context) (float64, error) {
	m, err := e.info(ctx, "cpu")
	if err != nil {
		return 0, err
	}
	sys, err1 := strconv.ParseFloat(m["used_cpu_sys"], 64)
	user, err2 := strconv.ParseFloat(m["used_cpu_user"], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("info cpu: %w", err)
	}
	return sys + user, nil
}

// commandStats returns INFO commandstats as command -> {calls, usec}.
func (e *redisEnv) commandStats(ctx context.Context) (map[string][2]float64, error) {
	m, err := e.info(ctx, "commandstats")
	if err != nil {
		return nil, err
	}
	out := map[string][2]float64{}
	for k, v := range m {
		name, ok := strings.CutPrefix(k, "cmdstat_")
		if !ok {
			continue
		}
		var calls, usec float64
		for _, f := range strings.Split(v, ",") {
			fk, fv, _ := strings.Cut(f, "=")
			switch fk {
			case "calls":
				calls, _ = strconv.ParseFloat(fv, 64)
			case "usec":
				usec, _ = strconv.ParseFloat(fv, 64)
			}
		}
		out[name] = [2]float64{calls, usec}
	}
	return out, nil
}

// meter brackets a phase: Redis CPU time and wall time.
type meter struct {
	e     *redisEnv
	cpu0  float64
	start time.Time
}

func (e *redisEnv) meter(ctx context.Context) (*meter, error) {
	c, err := e.cpuSeconds(ctx)
	if err != nil {
		return nil, err
	}
	return &meter{e: e, cpu0: c, start: time.Now()}, nil
}

// stop returns the wall time and the Redis CPU seconds since the meter began.
func (m *meter) stop(ctx context.Context) (time.Duration, float64, error) {
	d := time.Since(m.start)
	c, err := m.e.cpuSeconds(ctx)
	return d, c - m.cpu0, err
}

// machine describes where the bench ran.
type machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpuModel"`
	Go        string `json:"go"`
	Redis     string `json:"redis"`
	RedisURL  string `json:"redisURL"`
	OwnRedis  bool   `json:"ownRedis"`
	StartedAt string `json:"startedAt"`
	// LoadStart and LoadEnd are /proc/loadavg (1, 5, 15 min) at the start
	// and end: a load above the CPU count means other work shared the
	// machine and the wall-clock figures are low.
	LoadStart string `json:"loadavgStart"`
	LoadEnd   string `json:"loadavgEnd"`
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func describeMachine(ctx context.Context, e *redisEnv) machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), RedisURL: e.url, OwnRedis: e.server != nil,
		StartedAt: time.Now().UTC().Format(time.RFC3339), LoadStart: loadAvg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if s, err := e.info(ctx, "server"); err == nil {
		m.Redis = s["redis_version"]
	}
	return m
}

// repoRoot finds the workq module root: the nearest directory at or above
// the working directory whose go.mod declares github.com/workq/workq.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(strings.TrimSpace(string(b)), "module github.com/workq/workq\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the workq repository (a go.mod of module github.com/workq/workq) at or above the working directory; run the bench from the repository or its bench directory")
		}
		dir = parent
	}
}

// buildBinary builds ./cmd/<name> of the repository into dir. It returns
// the binary's path, or an error that says why it did not build.
func buildBinary(ctx context.Context, root, dir, name string) (string, error) {
	out := filepath.Join(dir, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/"+name)
	cmd.Dir = root
	msg, err := cmd.CombinedOutput()
	if err != nil {
		first := strings.SplitN(strings.TrimSpace(string(msg)), "\n", 2)[0]
		return "", fmt.Errorf("go build ./cmd/%s failed: %s", name, first)
	}
	return out, nil
}
