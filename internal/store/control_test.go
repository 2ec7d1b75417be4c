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
