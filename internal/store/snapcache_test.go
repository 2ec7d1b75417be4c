package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
)

func TestSnapshotCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// read reads e's Job through c and returns its status, checking how many
	// snapshots c read and reused on the way.
	read := func(t *testing.T, e *env, c *store.SnapshotCache, wantRead, wantReused int64) jobstate.Status {
		t.Helper()
		before := c.Stats()
		snaps, errs := c.Snapshots(ctx, []string{e.job})
		require.NoError(t, errs[0])
		after := c.Stats()
		require.Equal(t, store.CacheStats{Read: before.Read + wantRead, Reused: before.Reused + wantReused}, after,
			"snapshots read and reused")
		return snaps[0].Status
	}

	t.Run("AnIdleJobIsReadOnceThenChecked", func(t *testing.T) {
		t.Parallel()
		both(t, func(t *testing.T, e *env) {
			e.create(t, jobstate.Spec{})
			e.push(t, "a", "b")
			c := &store.SnapshotCache{S: e.s}
			first := read(t, e, c, 1, 0)
			again := read(t, e, c, 0, 1)
			require.Equal(t, first.Items, again.Items)
			require.Equal(t, first.UID, again.UID)
			require.False(t, again.Now.Before(first.Now), "a kept snapshot's clock moves on")
		})
	})

	t.Run("EveryChangeIsReadAgain", func(t *testing.T) {
		t.Parallel()
		both(t, func(t *testing.T, e *env) {
			e.create(t, jobstate.Spec{})
			c := &store.SnapshotCache{S: e.s}
			read(t, e, c, 1, 0)

			e.push(t, "a", "b")
			require.EqualValues(t, 2, read(t, e, c, 1, 0).Items.Pending, "a push")
			read(t, e, c, 0, 1)

			// A plain RPUSH runs no script: the pending list's length tells.
			require.NoError(t, e.rdb.RPush(ctx, store.PendingKey(e.job), "c").Err())
			require.EqualValues(t, 3, read(t, e, c, 1, 0).Items.Pending, "a plain RPUSH")
			read(t, e, c, 0, 1)

			_, err := e.s.SetSuspended(ctx, e.job, true)
			require.NoError(t, err)
			require.True(t, read(t, e, c, 1, 0).Suspended, "a suspend")
			_, err = e.s.SetSuspended(ctx, e.job, false)
			require.NoError(t, err)
			require.False(t, read(t, e, c, 1, 0).Suspended, "a resume")

			_, err = e.s.Seal(ctx, e.job, "")
			require.NoError(t, err)
			require.True(t, read(t, e, c, 1, 0).Sealed, "a seal")
			read(t, e, c, 0, 1)

			// A Job with workers is read every time: heartbeats expire
			// without a script.
			w := e.worker(t, "w1")
			require.EqualValues(t, 1, read(t, e, c, 1, 0).Active, "a worker registered")
			read(t, e, c, 1, 0)
			l := w.mustLease(t, 3)
			require.EqualValues(t, 3, read(t, e, c, 1, 0).Items.Leased)
			_, err = w.settle(t, ackAll(l))
			require.NoError(t, err)
			_, err = e.s.Finish(ctx, e.job, w.reg.UID, w.wid, w.reg.Session, store.OutcomeSucceeded)
			require.NoError(t, err)
			st := read(t, e, c, 1, 0)
			require.EqualValues(t, 3, st.Items.Succeeded)
			require.EqualValues(t, 0, st.Active)
			// Successes within the last minute move the throughput with
			// time alone: still read every time.
			read(t, e, c, 1, 0)
		})
	})

	t.Run("ADeletedOrRecreatedJobIsReadAgain", func(t *testing.T) {
		t.Parallel()
		both(t, func(t *testing.T, e *env) {
			uid := e.create(t, jobstate.Spec{})
			c := &store.SnapshotCache{S: e.s}
			require.Equal(t, uid, read(t, e, c, 1, 0).UID)
			require.NoError(t, e.s.Delete(ctx, e.job))
			_, errs := c.Snapshots(ctx, []string{e.job})
			require.ErrorIs(t, errs[0], store.ErrNoJob)
			uid2 := e.create(t, jobstate.Spec{})
			require.Equal(t, uid2, read(t, e, c, 1, 0).UID)
			read(t, e, c, 0, 1)
		})
	})

	t.Run("AKeptSnapshotIsReadAgainWithinMaxAge", func(t *testing.T) {
		t.Parallel()
		e := miniEnv(t)
		e.create(t, jobstate.Spec{})
		clock := testkit.NewClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
		c := &store.SnapshotCache{S: e.s, MaxAge: 10 * time.Second, Now: clock.Now}
		read(t, e, c, 1, 0)
		clock.Add(5*time.Second - time.Millisecond)
		read(t, e, c, 0, 1)
		clock.Add(5*time.Second + time.Millisecond)
		read(t, e, c, 1, 0)
	})

	t.Run("JobsListsEveryJob", func(t *testing.T) {
		t.Parallel()
		e := miniEnv(t)
		for _, j := range []string{"b", "a"} {
			_, err := e.s.Create(ctx, j, jobstate.Spec{})
			require.NoError(t, err)
		}
		c := &store.SnapshotCache{S: e.s}
		for range 2 {
			js, err := c.Jobs(ctx)
			require.NoError(t, err)
			require.Len(t, js, 2)
			require.Equal(t, "a", js[0].Name)
			require.Equal(t, "b", js[1].Name)
			require.NoError(t, js[0].Err)
		}
		require.Equal(t, store.CacheStats{Read: 2, Reused: 2}, c.Stats())

		// b's keys expire (its registry entry stays): Jobs leaves it out
		// and drops its name.
		for _, k := range store.KeysFor("b") {
			require.NoError(t, e.rdb.Del(ctx, k).Err())
		}
		js, err := c.Jobs(ctx)
		require.NoError(t, err)
		require.Len(t, js, 1)
		require.Equal(t, "a", js[0].Name)
		require.False(t, e.rdb.HExists(ctx, store.RegistryKey, "b").Val(), "the gone Job's name is dropped")
	})
}
