package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/pkg/jobstate"
)

func TestDeadIsReadInPages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := miniEnv(t)
	e.create(t, jobstate.Spec{})
	n := store.DeadPage*2 + 7
	key := store.KeysFor(e.job).Key("dead")
	for i := range n {
		require.NoError(t, e.rdb.ZAdd(ctx, key, redisZ(float64(i), fmt.Sprintf("%d:1:4:boomitem-%d", i, i))).Err())
	}
	all, err := e.s.Dead(ctx, e.job, 0)
	require.NoError(t, err)
	require.Len(t, all, n)
	for i, d := range all {
		require.EqualValues(t, i, d.ID)
		require.Equal(t, "boom", d.LastError)
		require.Equal(t, fmt.Sprintf("item-%d", i), d.Item)
	}
	some, err := e.s.Dead(ctx, e.job, store.DeadPage+3)
	require.NoError(t, err)
	require.Len(t, some, store.DeadPage+3)
	require.Equal(t, all[:store.DeadPage+3], some)
	none, err := e.s.Dead(ctx, "no-such-job", 0)
	require.NoError(t, err)
	require.Empty(t, none)
}

func TestNamesReadsTheRegistryInPages(t *testing.T) {
	t.Parallel()
	// Each on a Redis of its own: the registry is shared by every Job.
	check := func(t *testing.T, e *env) {
		ctx := context.Background()
		n := store.RegistryPage*2 + 3
		pipe := e.rdb.Pipeline()
		want := make([]string, n)
		for i := range n {
			name := fmt.Sprintf("%s-%05d", e.job, i)
			want[i] = name
			pipe.HSet(ctx, store.KeysFor(name).Key("spec"), "uid", "u"+name)
			pipe.HSet(ctx, store.RegistryKey, name, "u"+name)
		}
		_, err := pipe.Exec(ctx)
		require.NoError(t, err)
		names, uids, err := e.s.Names(ctx)
		require.NoError(t, err)
		var mine []string
		for _, name := range names {
			if uid, ok := uids[name]; ok && uid == "u"+name {
				mine = append(mine, name)
			}
		}
		require.Equal(t, want, mine)
	}
	t.Run("miniredis", func(t *testing.T) {
		t.Parallel()
		check(t, miniEnv(t))
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		s, err := store.Open(context.Background(), store.DialOptions{URL: startRedis(t)})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		check(t, &env{s: s, rdb: s.Redis(), job: "job"})
	})
}
