package redisconn_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/redisconn"
	"github.com/workq/workq/internal/redistest"
)

// twoKeys sets KEYS[1] and KEYS[2] to ARGV[1] and returns both, as workq's
// scripts touch several keys of one Job (one hash tag) at once.
var twoKeys = redis.NewScript(`
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[1])
return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2])}
`)

// tagsPerNode returns, for each node of c, a hash tag whose slot it serves.
func tagsPerNode(t *testing.T, c *redistest.Cluster) []string {
	t.Helper()
	tags := make([]string, len(c.Nodes))
	found := 0
	for i := 0; found < len(tags); i++ {
		require.Less(t, i, 10000, "no hash tag lands on some node")
		tag := fmt.Sprintf("{job%d}", i)
		owner, err := c.Owner(tag)
		require.NoError(t, err)
		if tags[owner] == "" {
			tags[owner] = tag
			found++
		}
	}
	return tags
}

func TestCluster(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	tags := tagsPerNode(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rdb, info := open(t, redisconn.Options{URL: c.URL()})
	require.Equal(t, redisconn.Cluster, info.Kind)
	require.IsType(t, &redis.ClusterClient{}, rdb)

	t.Run("KeysOfEveryNodeAreWrittenWhereTheyBelong", func(t *testing.T) {
		for node, tag := range tags {
			key := "workq:" + tag + ":meta"
			require.NoError(t, rdb.Set(ctx, key, "on-"+tag, 0).Err())
			v, err := rdb.Get(ctx, key).Result()
			require.NoError(t, err)
			require.Equal(t, "on-"+tag, v)
			// The owner holds it; another node redirects.
			v2, err := c.Nodes[node].Do("GET", key)
			require.NoError(t, err)
			require.Equal(t, "on-"+tag, v2)
			_, err = c.Nodes[(node+1)%len(c.Nodes)].Do("GET", key)
			require.ErrorContains(t, err, "MOVED")
		}
	})
	t.Run("ScriptsOnOneHashTagRunOnEveryNode", func(t *testing.T) {
		for node, tag := range tags {
			a, b := "workq:"+tag+":a", "workq:"+tag+":b"
			v, err := twoKeys.Run(ctx, rdb, []string{a, b}, "x"+tag).StringSlice()
			require.NoError(t, err, "node %d", node)
			require.Equal(t, []string{"x" + tag, "x" + tag}, v)
			got, err := c.Nodes[node].Do("GET", b)
			require.NoError(t, err)
			require.Equal(t, "x"+tag, got)
		}
	})
	t.Run("ScriptAcrossSlotsFailsWithCROSSSLOT", func(t *testing.T) {
		err := twoKeys.Run(ctx, rdb, []string{"workq:" + tags[0] + ":a", "workq:" + tags[1] + ":a"}, "x").Err()
		require.ErrorContains(t, err, "CROSSSLOT")
	})
	t.Run("SingleNodeURLOfAClusterNodeGetsAClusterClient", func(t *testing.T) {
		// HELLO answers a map in RESP3 (go-redis's default) and a flat
		// array in RESP2.
		for _, url := range []string{c.Nodes[1].URL(), c.Nodes[2].URL() + "?protocol=2"} {
			one, info := open(t, redisconn.Options{URL: url})
			require.Equal(t, redisconn.Cluster, info.Kind, url)
			require.Equal(t, url, info.URL)
			require.IsType(t, &redis.ClusterClient{}, one)
			// Keys of the other nodes too: a single-node client gets MOVED.
			for _, tag := range tags {
				require.NoError(t, one.Set(ctx, "workq:"+tag+":detected", "1", 0).Err())
				v, err := twoKeys.Run(ctx, one, []string{"workq:" + tag + ":c", "workq:" + tag + ":d"}, "y").StringSlice()
				require.NoError(t, err)
				require.Equal(t, []string{"y", "y"}, v)
			}
		}
	})
	t.Run("SingleNodeURLWithADBIsRefused", func(t *testing.T) {
		_, _, err := redisconn.Open(ctx, redisconn.Options{URL: "redis://" + c.Nodes[0].Addr + "/3"})
		require.ErrorIs(t, err, redisconn.ErrBadURL)
		require.ErrorContains(t, err, "node of a Redis Cluster, which has only db 0: remove /3")
	})
	t.Run("KeepsAnsweringAfterAPrimaryRestarts", func(t *testing.T) {
		// The client holds connections to every node; node 0 is killed
		// and started again on its port with its AOF and nodes.conf.
		for _, tag := range tags {
			require.NoError(t, rdb.Set(ctx, "workq:"+tag+":before", tag, 0).Err())
		}
		require.NoError(t, c.Restart(ctx, 0))
		for _, tag := range tags {
			v, err := rdb.Get(ctx, "workq:"+tag+":before").Result()
			require.NoError(t, err, "read %s after the restart", tag)
			require.Equal(t, tag, v)
			require.NoError(t, rdb.Set(ctx, "workq:"+tag+":after", tag, 0).Err())
			v2, err := twoKeys.Run(ctx, rdb, []string{"workq:" + tag + ":e", "workq:" + tag + ":f"}, "z").StringSlice()
			require.NoError(t, err)
			require.Equal(t, []string{"z", "z"}, v2)
		}
		v, err := c.Nodes[0].Do("GET", "workq:"+tags[0]+":after")
		require.NoError(t, err)
		require.Equal(t, tags[0], v)
	})
}
