package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/pkg/jobstate"
)

// TestWatchJSONPrintsOneStatusPerLine: `watch -o json` is for scripts: one
// JSON status per refresh, the last one final, and the exit code of watch.
func TestWatchJSONPrintsOneStatusPerLine(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.ok("create", "wj", "--max-attempts", "1")
	e.ok("push", "wj", "good", "bad", "--seal")
	w := e.startWorker("--job", "wj", "--", "sh", "-c", `[ "$(cat)" = good ]`)
	r := e.coord("watch", "wj", "-o", "json", "--interval", "50ms")
	require.Equal(t, 1, r.Code, "a Job with a dead item ends Failed: %s", r)
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	require.NotEmpty(t, lines)
	var last jobstate.Status
	for _, l := range lines {
		require.NoError(t, json.Unmarshal([]byte(l), &last), "every line is one JSON status: %q", l)
		require.Equal(t, "wj", last.Name)
	}
	require.Equal(t, jobstate.PhaseFailed, last.Phase)
	require.EqualValues(t, 1, last.Items.Succeeded)
	require.EqualValues(t, 1, last.Items.Dead)
	require.Equal(t, 1, w.Wait(t, 30*time.Second), "the worker of a failed Job exits 1: %s", w)
}
