//go:build cluster

package cluster_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/redistest"
	"github.com/workq/workq/internal/testkit"
)

// TestSettingsThatCannotWorkFailWithOneLine runs both binaries with
// Cluster and Sentinel settings that cannot work: each exits with one line
// on stderr that says what is wrong and what to do, and the exit code of
// its kind: 1 for a Redis that cannot be reached (try again later), 2 for
// settings to fix.
func TestSettingsThatCannotWorkFailWithOneLine(t *testing.T) {
	t.Parallel()
	bins := testkit.Build(t)
	st := redistest.StartSentinel(t)
	c := redistest.StartCluster(t, 3)
	sentinel := st.Sentinels[0].Addr
	// Three loopback ports where nothing listens.
	down := "redis://" + testkit.FreeAddr(t) + "?addr=" + testkit.FreeAddr(t) + "&addr=" + testkit.FreeAddr(t)

	cases := []struct {
		name string
		url  string
		code int
		want []string
	}{
		{"ClusterWhoseNodesAreDown", down, 1, []string{
			"redis unavailable: connect to Redis cluster " + down,
			"connection refused",
			"check that Redis runs and that --redis (WORKQ_REDIS_URL) points to it",
		}},
		{"SentinelURLWithAWrongMasterName", "redis+sentinel://" + sentinel + "/nosuch", 2, []string{
			"bad Redis URL",
			`no Sentinel that answered knows a master named "nosuch"`,
			"use the name of their `sentinel monitor NAME ...` line",
		}},
		{"SentinelURLOfThreeSentinelsWithAWrongMasterName", "redis+sentinel://" + strings.Join(st.Addrs(), ",") + "/nosuch", 2, []string{
			"bad Redis URL",
			`no Sentinel that answered knows a master named "nosuch"`,
			"use the name of their `sentinel monitor NAME ...` line",
		}},
		{"PlainURLOfASentinel", "redis://" + sentinel, 2, []string{
			"bad Redis URL",
			sentinel + " is a Redis Sentinel, not a Redis: use redis+sentinel://" + sentinel + "/MASTER",
		}},
		{"ClusterURLWithADatabase", c.URL() + "&db=2", 2, []string{
			"bad Redis URL",
			"a Redis Cluster URL has only db 0",
		}},
		{"SingleNodeURLOfAClusterNodeWithADatabase", "redis://" + c.Nodes[1].Addr + "/3", 2, []string{
			"bad Redis URL",
			"this Redis is a node of a Redis Cluster, which has only db 0: remove /3",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runs := map[string]testkit.Command{
				"coordinator list":   {Bin: bins.Coordinator, Args: []string{"list"}},
				"coordinator create": {Bin: bins.Coordinator, Args: []string{"create", "j"}},
				"coordinator push":   {Bin: bins.Coordinator, Args: []string{"push", "j", "item"}},
				"worker":             {Bin: bins.Worker, Args: []string{"--job", "j", "--wait", "1s", "--", "true"}},
			}
			for name, cmd := range runs {
				cmd.Name = name
				cmd.Env = []string{"WORKQ_REDIS_URL=" + tc.url}
				r := testkit.Run(t, time.Minute, cmd)
				require.Equal(t, tc.code, r.Code, "%s: %s", name, r)
				require.Empty(t, r.Stdout, name)
				if name == "worker" {
					// A worker waits for Redis (--wait) and logs while it
					// does; its last line says why it gave up.
					lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
					r.Stderr = lines[len(lines)-1]
				}
				line := oneLine(t, r.Stderr)
				prefix := strings.Fields(name)[0] + ": "
				require.True(t, strings.HasPrefix(line, prefix), "%s: %q", name, line)
				for _, w := range tc.want {
					require.Contains(t, line, w, name)
				}
			}
		})
	}
}
