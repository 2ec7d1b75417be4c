package e2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/pkg/jobstate"
)

// TestShardedJobFromTheCLI: a Job created with --shards is pushed,
// worked on by two worker processes whose commands log every run, and
// read through status, list, dead and results as one Job.
func TestShardedJobFromTheCLI(t *testing.T) {
	t.Parallel()
	e := setup(t)
	require.Equal(t, "created job big (WorkQueue)\n", e.ok("create", "big", "--shards", "3", "--max-attempts", "1", "--batch-size", "20"))
	items := make([]string, 600)
	for i := range items {
		items[i] = fmt.Sprintf("it-%03d", i)
	}
	e.ok("push", "big", "-f", writeItems(t, e.dir, "items", items), "--seal")

	r := e.coord("create", "big")
	require.Equal(t, 2, r.Code, r)
	require.Contains(t, r.Stderr, "already exists")
	r = e.coord("create", "big-shard-1")
	require.Equal(t, 2, r.Code, "a shard's name is taken: %s", r)
	r = e.coord("create", "idx", "--shards", "4", "--completions", "3")
	require.Equal(t, 2, r.Code, r)
	require.Contains(t, r.Stderr, "each shard holds at least one index")

	log := filepath.Join(e.dir, "runs")
	cmd := writeScript(t, e.dir, "item.sh", `read -r it; echo "$it $WORKQ_JOB" >> "`+log+`"; [ "$it" != it-123 ]`+"\n")
	w1 := e.startWorker("--job", "big", "-c", "2", "--", cmd)
	w2 := e.startWorker("--job", "big", "-c", "4", "--", cmd)
	for _, w := range []interface {
		Wait(testing.TB, time.Duration) int
	}{w1, w2} {
		require.Equal(t, 1, w.Wait(t, 2*time.Minute), "an item died: the Job failed, so workers exit 1")
	}

	runs := readLines(t, log)
	seen := map[string]int{}
	shardOf := map[string]string{}
	for _, l := range runs {
		it, shard, _ := strings.Cut(l, " ")
		seen[it]++
		shardOf[it] = shard
	}
	require.Len(t, seen, len(items), "every item ran")
	for _, it := range items {
		require.Equal(t, 1, seen[it], "item %s ran once", it)
	}
	perShard := map[string]int{}
	for _, sh := range shardOf {
		perShard[sh]++
	}
	require.Equal(t, map[string]int{"big-shard-0": 200, "big-shard-1": 200, "big-shard-2": 200}, perShard, "items are dealt evenly")

	s, _ := e.statusCLI("big")
	require.Equal(t, jobstate.PhaseFailed, s.Phase, brief(s))
	require.EqualValues(t, 600, s.Items.Total)
	require.EqualValues(t, 599, s.Items.Succeeded)
	require.EqualValues(t, 1, s.Items.Dead)
	require.Equal(t, jobstate.ReasonFailedItems, condition(t, s, jobstate.ConditionFailed).Reason)

	dead := e.ok("dead", "big")
	require.Contains(t, dead, shardOf["it-123"]+":")
	require.Contains(t, dead, `"it-123"`)

	list := strings.Split(strings.TrimSpace(e.ok("list")), "\n")
	var names []string
	for _, l := range list[1:] {
		names = append(names, strings.Fields(l)[0])
	}
	require.Equal(t, []string{"big", "big-shard-0", "big-shard-1", "big-shard-2"}, names)
	require.True(t, slices.ContainsFunc(list, func(l string) bool { return strings.HasPrefix(l, "big ") && strings.Contains(l, "599/600") }), list)

	r = e.coord("results", "big")
	require.Equal(t, 2, r.Code, r)
	require.Contains(t, r.Stderr, "big-shard-0")
	r = e.coord("delete", "big-shard-0")
	require.NotEqual(t, 0, r.Code, r)
	require.Contains(t, r.Stderr, "delete \"big\"")

	e.ok("delete", "big")
	for _, sh := range []string{"big", "big-shard-0", "big-shard-1", "big-shard-2"} {
		e.requireNoKeys(sh, false, sh)
	}
	require.Contains(t, e.ok("list"), "no Jobs")
}

// TestShardedIndexedJobFromTheCLI: each index of a sharded Indexed Job
// runs once with JOB_COMPLETION_INDEX set to the Job's index, and status
// shows the Job's completed indexes.
func TestShardedIndexedJobFromTheCLI(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.ok("create", "idx", "--shards", "3", "--completions", "50", "--batch-size", "4")
	log := filepath.Join(e.dir, "runs")
	cmd := writeScript(t, e.dir, "item.sh", `echo "$JOB_COMPLETION_INDEX $(cat)" >> "`+log+`"`+"\n")
	w := e.startWorker("--job", "idx", "-c", "3", "--", cmd)
	require.Equal(t, 0, w.Wait(t, 2*time.Minute))
	var got []string
	for _, l := range readLines(t, log) {
		env, stdin, _ := strings.Cut(l, " ")
		require.Equal(t, env, stdin, "the index in the environment is the item")
		got = append(got, env)
	}
	want := make([]string, 50)
	for i := range want {
		want[i] = fmt.Sprint(i)
	}
	require.ElementsMatch(t, want, got, "every index once")
	s, _ := e.statusCLI("idx")
	require.Equal(t, jobstate.PhaseComplete, s.Phase, brief(s))
	require.Equal(t, "0-49", s.CompletedIndexes)
	require.Equal(t, jobstate.KindIndexed, s.Kind)
}
