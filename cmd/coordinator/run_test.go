package main

import (
	"context"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/pkg/queue"
)

func TestEmbeddedRedisRequiresAPassword(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T, envPassword string) (addr, rawURL string) {
		t.Helper()
		m, u, err := startEmbeddedRedis(envPassword)
		require.NoError(t, err)
		t.Cleanup(m.Close)
		return m.Addr(), u
	}
	open := func(t *testing.T, o queue.Options) error {
		t.Helper()
		c, err := queue.Open(context.Background(), o)
		if err == nil {
			require.NoError(t, c.Close())
		}
		return err
	}

	t.Run("WithoutThePasswordIsRefused", func(t *testing.T) {
		t.Parallel()
		addr, _ := setup(t, "")
		err := open(t, queue.Options{URL: "redis://" + addr + "/0"})
		require.ErrorIs(t, err, queue.ErrAuth)
	})

	t.Run("AWrongPasswordIsRefused", func(t *testing.T) {
		t.Parallel()
		addr, _ := setup(t, "")
		err := open(t, queue.Options{URL: "redis://:guess@" + addr + "/0"})
		require.ErrorIs(t, err, queue.ErrAuth)
	})

	t.Run("TheURLCarriesARandomPassword", func(t *testing.T) {
		t.Parallel()
		addr, u1 := setup(t, "")
		require.NoError(t, open(t, queue.Options{URL: u1}))
		_, u2 := setup(t, "")
		p1, p2 := password(t, u1), password(t, u2)
		require.GreaterOrEqual(t, len(p1), 16)
		require.NotEqual(t, p1, p2, "each run makes its own password")
		require.Contains(t, u1, addr)
	})

	t.Run("WORKQ_REDIS_PASSWORDIsThePasswordWhenSet", func(t *testing.T) {
		t.Parallel()
		// run's client and its workers send WORKQ_REDIS_PASSWORD whatever
		// the URL says, so the server must take that one.
		addr, u := setup(t, "from-the-environment")
		require.Equal(t, "from-the-environment", password(t, u))
		require.NoError(t, open(t, queue.Options{URL: "redis://" + addr + "/0", Password: "from-the-environment"}))
		require.NoError(t, open(t, queue.Options{URL: u, Password: "from-the-environment"}))
	})
}

func password(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	p, ok := u.User.Password()
	require.True(t, ok, "the URL holds a password")
	return p
}
