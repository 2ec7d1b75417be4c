//go:build compose

package compose

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// The WORKQ_REDIS_URL of each Redis profile, as docker-compose.yml and
// .env.example give them.
const (
	clusterURL  = "redis://redis-node-1:6379?addr=redis-node-2:6379&addr=redis-node-3:6379"
	sentinelURL = "redis+sentinel://sentinel-1:26379,sentinel-2:26379,sentinel-3:26379/workq"
	defaultURL  = "redis://redis:6379/0"
)

// workqServices are the services that run workq and read WORKQ_REDIS_URL.
var workqServices = []string{"coordinator", "loader", "worker"}

// composeService is the part of a service in `compose config` that the
// test reads.
type composeService struct {
	Profiles    []string          `yaml:"profiles"`
	Hostname    string            `yaml:"hostname"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	Restart string `yaml:"restart"`
}

// composeConfig runs `compose [--profile P] config` on the repository's
// docker-compose.yml with WORKQ_REDIS_URL set to redisURL (unset when
// empty), and decodes the services.
func composeConfig(t *testing.T, profile, redisURL string) map[string]composeService {
	t.Helper()
	compose := composeCommand(t)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WORKQ_") && !strings.HasPrefix(kv, "COMPOSE_") {
			env = append(env, kv)
		}
	}
	if redisURL != "" {
		env = append(env, "WORKQ_REDIS_URL="+redisURL)
	}
	args := append([]string{}, compose[1:]...)
	// An empty directory as the project's: no .env of a developer is read.
	args = append(args, "--file", filepath.Join(root, "docker-compose.yml"), "--project-directory", t.TempDir())
	if profile != "" {
		args = append(args, "--profile", profile)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := run(ctx, root, env, nil, compose[0], append(args, "config")...)
	require.NoError(t, err, "compose config with profile %q", profile)
	var cfg struct {
		Services map[string]composeService `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(out), &cfg), out)
	return cfg.Services
}

// script is a service's command as the container runs it: Compose's $$
// escapes, which some versions keep in their output, undone.
func script(s composeService) string {
	return strings.ReplaceAll(strings.Join(s.Command, " "), "$$", "$")
}

// urlHosts returns the host:port of every server a cluster or Sentinel URL
// names.
func urlHosts(t *testing.T, raw string) []string {
	t.Helper()
	if rest, ok := strings.CutPrefix(raw, "redis+sentinel://"); ok {
		hosts, _, _ := strings.Cut(rest, "/")
		return strings.Split(hosts, ",")
	}
	u, err := url.Parse(raw)
	require.NoError(t, err)
	return append([]string{u.Host}, u.Query()["addr"]...)
}

func TestComposeConfigOfTheRedisProfiles(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..")
	file, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	require.NoError(t, err)
	envExample, err := os.ReadFile(filepath.Join(root, ".env.example"))
	require.NoError(t, err)

	t.Run("TheDefaultStackUsesTheOneRedis", func(t *testing.T) {
		t.Parallel()
		services := composeConfig(t, "", "")
		for _, name := range append([]string{"redis"}, workqServices...) {
			require.Contains(t, services, name)
			require.Empty(t, services[name].Profiles, "%s runs without a profile", name)
		}
		for _, name := range workqServices {
			require.Equal(t, defaultURL, services[name].Environment["WORKQ_REDIS_URL"], name)
		}
		require.Contains(t, string(envExample), "\nWORKQ_REDIS_URL="+defaultURL+"\n")
	})

	t.Run("Cluster", func(t *testing.T) {
		t.Parallel()
		require.Contains(t, string(file), clusterURL, "docker-compose.yml says how to use the cluster profile")
		require.Contains(t, string(envExample), "\n# WORKQ_REDIS_URL="+clusterURL+"\n")
		services := composeConfig(t, "cluster", clusterURL)
		for _, name := range workqServices {
			require.Equal(t, clusterURL, services[name].Environment["WORKQ_REDIS_URL"], "%s follows WORKQ_REDIS_URL", name)
		}
		init, ok := services["redis-cluster-init"]
		require.True(t, ok, "a one-shot joins the nodes")
		require.Equal(t, []string{"cluster"}, init.Profiles)
		require.Equal(t, "no", init.Restart, "the join runs once")
		joinScript := script(init)
		hosts := urlHosts(t, clusterURL)
		require.Len(t, hosts, 3)
		for _, h := range hosts {
			name, port, _ := strings.Cut(h, ":")
			require.Equal(t, "6379", port, h)
			node, ok := services[name]
			require.True(t, ok, "the URL's node %s is a service", name)
			require.Equal(t, []string{"cluster"}, node.Profiles, name)
			require.Equal(t, name, node.Hostname, "%s announces the name the URL gives", name)
			cmd := script(node)
			for _, flag := range []string{"--cluster-enabled yes", "--appendonly yes", "--cluster-config-file /data/nodes.conf",
				"--cluster-announce-hostname", "--cluster-preferred-endpoint-type hostname", `--requirepass "$WORKQ_REDIS_PASSWORD"`} {
				require.Contains(t, cmd, flag, name)
			}
			require.Equal(t, "service_healthy", init.DependsOn[name].Condition, "the join waits for %s", name)
			require.Contains(t, joinScript, h, "the join names %s", h)
			require.NotNil(t, node.Healthcheck, name)
		}
		require.Contains(t, joinScript, "--cluster create")
		require.Regexp(t, `cluster info \| grep -q '\^cluster_state:ok'`, joinScript, "a formed cluster is left alone")
	})

	t.Run("Sentinel", func(t *testing.T) {
		t.Parallel()
		require.Contains(t, string(file), sentinelURL, "docker-compose.yml says how to use the sentinel profile")
		require.Contains(t, string(envExample), "\n# WORKQ_REDIS_URL="+sentinelURL+"\n")
		services := composeConfig(t, "sentinel", sentinelURL)
		for _, name := range workqServices {
			require.Equal(t, sentinelURL, services[name].Environment["WORKQ_REDIS_URL"], "%s follows WORKQ_REDIS_URL", name)
		}
		master := sentinelURL[strings.LastIndex(sentinelURL, "/")+1:]
		hosts := urlHosts(t, sentinelURL)
		require.Len(t, hosts, 3)
		monitor := regexp.MustCompile(`sentinel monitor (\S+) (\S+) 6379 2`)
		var primary string
		for _, h := range hosts {
			name, port, _ := strings.Cut(h, ":")
			require.Equal(t, "26379", port, h)
			s, ok := services[name]
			require.True(t, ok, "the URL's Sentinel %s is a service", name)
			require.Equal(t, []string{"sentinel"}, s.Profiles, name)
			cmd := script(s)
			require.Contains(t, cmd, "--sentinel", name)
			m := monitor.FindStringSubmatch(cmd)
			require.NotNil(t, m, "%s monitors a primary with quorum 2", name)
			require.Equal(t, master, m[1], "%s monitors the master name of the URL", name)
			primary = m[2]
			for _, line := range []string{"sentinel resolve-hostnames yes", "sentinel announce-hostnames yes", "sentinel auth-pass " + master} {
				require.Contains(t, cmd, line, name)
			}
		}
		// The primary and its replica: each announces its service name and
		// knows the password to replicate from the other after a failover.
		var replicas []string
		for name, s := range services {
			if !slices.Contains(s.Profiles, "sentinel") || strings.HasPrefix(name, "sentinel-") {
				continue
			}
			require.Equal(t, name, s.Hostname, name)
			cmd := script(s)
			for _, line := range []string{"appendonly yes", `masterauth \"$WORKQ_REDIS_PASSWORD\"`, "replica-announce-ip $(hostname)"} {
				require.Contains(t, cmd, line, name)
			}
			if s.Environment["WORKQ_REPLICA_OF"] != "" {
				require.Equal(t, primary, s.Environment["WORKQ_REPLICA_OF"], "%s replicates the monitored primary", name)
				replicas = append(replicas, name)
			}
		}
		require.Contains(t, services, primary, "the monitored primary is a service")
		require.Len(t, replicas, 1)
	})
}
