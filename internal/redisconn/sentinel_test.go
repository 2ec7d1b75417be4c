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

func TestSentinel(t *testing.T) {
	t.Parallel()
	st := redistest.StartSentinel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("SingleNodeURLOfASentinelIsRefused", func(t *testing.T) {
		addr := st.Sentinels[0].Addr
		_, _, err := redisconn.Open(ctx, redisconn.Options{URL: "redis://" + addr})
		require.ErrorIs(t, err, redisconn.ErrBadURL)
		require.ErrorContains(t, err, fmt.Sprintf("is a Redis Sentinel, not a Redis: use redis+sentinel://%s/MASTER", addr))
	})
	t.Run("UnknownMasterNameFails", func(t *testing.T) {
		_, _, err := redisconn.Open(ctx, redisconn.Options{URL: "redis+sentinel://" + st.Sentinels[0].Addr + "/nosuch"})
		require.ErrorIs(t, err, redisconn.ErrBadURL)
		require.ErrorContains(t, err, `no Sentinel that answered knows a master named "nosuch"`)
	})
	t.Run("WritesFollowTheFailover", func(t *testing.T) {
		rdb, info := open(t, redisconn.Options{URL: st.URL()})
		require.Equal(t, redisconn.Sentinel, info.Kind)
		require.IsType(t, &redis.Client{}, rdb)
		require.NoError(t, rdb.Set(ctx, "before", "1", 0).Err())
		acked, err := rdb.Do(ctx, "WAIT", 1, 10000).Int()
		require.NoError(t, err)
		require.Equal(t, 1, acked, "the replica has the write before the primary dies")

		old, err := st.KillPrimary()
		require.NoError(t, err)
		promoted, err := st.WaitFailover(ctx, old)
		require.NoError(t, err)
		require.NotEqual(t, old, promoted)

		// The same client, with no reconnect by the caller: its next
		// commands go to the promoted replica.
		require.NoError(t, rdb.Set(ctx, "after", "2", 0).Err())
		v, err := rdb.Get(ctx, "before").Result()
		require.NoError(t, err)
		require.Equal(t, "1", v)
		for _, s := range st.Data {
			if s.Addr == promoted {
				got, err := s.Do("GET", "after")
				require.NoError(t, err)
				require.Equal(t, "2", got)
			}
		}
	})
}
