package redisconn_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/redisconn"
	"github.com/workq/workq/internal/redistest"
)

// open opens o for one test and closes the client when it ends.
func open(t *testing.T, o redisconn.Options) (redis.UniversalClient, redisconn.Info) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rdb, info, err := redisconn.Open(ctx, o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb, info
}

func TestOpenSingle(t *testing.T) {
	t.Parallel()
	const password = "s3cr3t-pw"
	srv := redistest.ForTest(t, "--requirepass", password)
	ctx := context.Background()

	t.Run("PasswordOptionOverridesTheURL", func(t *testing.T) {
		url := fmt.Sprintf("redis://:wrong@%s/2", srv.Addr)
		rdb, info := open(t, redisconn.Options{URL: url, Password: password})
		require.Equal(t, redisconn.Single, info.Kind)
		require.Equal(t, fmt.Sprintf("redis://:xxxxx@%s/2", srv.Addr), info.URL)
		require.IsType(t, &redis.Client{}, rdb)
		require.NoError(t, rdb.Set(ctx, "k", "v", 0).Err())
		// The URL's db 2 is the one written.
		db2 := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: password, DB: 2})
		defer db2.Close()
		v, err := db2.Get(ctx, "k").Result()
		require.NoError(t, err)
		require.Equal(t, "v", v)
	})
	t.Run("WrongPasswordIsNotABadURLAndIsNotShown", func(t *testing.T) {
		url := fmt.Sprintf("redis://:wrong-%s@%s/0", password, srv.Addr)
		_, info, err := redisconn.Open(ctx, redisconn.Options{URL: url})
		require.Error(t, err)
		require.False(t, errors.Is(err, redisconn.ErrBadURL), "%v", err)
		require.ErrorContains(t, err, "WRONGPASS")
		require.NotContains(t, err.Error(), password)
		require.Equal(t, redisconn.Single, info.Kind)
	})
	t.Run("UnreachableIsNotABadURL", func(t *testing.T) {
		port, err := redistest.FreePort()
		require.NoError(t, err)
		url := fmt.Sprintf("redis://:%s@127.0.0.1:%d/0", password, port)
		_, _, err = redisconn.Open(ctx, redisconn.Options{URL: url})
		require.Error(t, err)
		require.False(t, errors.Is(err, redisconn.ErrBadURL), "%v", err)
		require.ErrorContains(t, err, "connection refused")
		require.ErrorContains(t, err, fmt.Sprintf("redis://:xxxxx@127.0.0.1:%d/0", port))
		require.NotContains(t, err.Error(), password)
	})
	t.Run("BadURLFailsBeforeAnyConnection", func(t *testing.T) {
		_, _, err := redisconn.Open(ctx, redisconn.Options{URL: "redis://" + srv.Addr + "/0?bogus=1"})
		require.ErrorIs(t, err, redisconn.ErrBadURL)
	})
}
