package redistest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/redistest"
)

func TestClusterServesEverySlotAndKeepsDataAcrossARestart(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	require.Len(t, c.Nodes, 3)

	// One key per node, found through Owner, written on its owner: a
	// different node redirects it there.
	keys := map[int]string{}
	for i := 0; len(keys) < 3; i++ {
		require.Less(t, i, 1000, "no key lands on some node")
		key := fmt.Sprintf("{tag%d}:k", i)
		owner, err := c.Owner(key)
		require.NoError(t, err)
		if _, ok := keys[owner]; !ok {
			keys[owner] = key
		}
	}
	for owner, key := range keys {
		_, err := c.Nodes[owner].Do("SET", key, "v")
		require.NoError(t, err)
		_, err = c.Nodes[(owner+1)%3].Do("SET", key, "v")
		require.ErrorContains(t, err, "MOVED")
		require.ErrorContains(t, err, c.Nodes[owner].Addr)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, c.Restart(ctx, 0))
	v, err := c.Nodes[0].Do("GET", keys[0])
	require.NoError(t, err)
	require.Equal(t, "v", v)
	require.True(t, strings.HasPrefix(c.URL(), "redis://"+c.Nodes[0].Addr+"?addr="+c.Nodes[1].Addr+"&addr="))
}

func TestSentinelFailsOverWhenThePrimaryDies(t *testing.T) {
	t.Parallel()
	st := redistest.StartSentinel(t)
	primary, err := st.Primary()
	require.NoError(t, err)
	require.Equal(t, st.Data[0].Addr, primary)
	_, err = st.Data[0].Do("SET", "k", "v")
	require.NoError(t, err)
	_, err = st.Data[0].Do("WAIT", "1", "5000")
	require.NoError(t, err)

	killed, err := st.KillPrimary()
	require.NoError(t, err)
	require.Equal(t, primary, killed)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	promoted, err := st.WaitFailover(ctx, killed)
	require.NoError(t, err)
	require.Equal(t, st.Data[1].Addr, promoted)
	v, err := st.Data[1].Do("GET", "k")
	require.NoError(t, err)
	require.Equal(t, "v", v)
	_, err = st.Data[1].Do("SET", "k2", "v")
	require.NoError(t, err, "the promoted replica takes writes")
}
