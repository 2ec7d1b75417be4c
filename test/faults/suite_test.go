//go:build faults

package faults_test

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// docCommand is the command that writes the table into docs/RELIABILITY.md.
const docCommand = "WORKQ_REQUIRE_REDIS=1 WORKQ_WRITE_DOCS=1 go test -tags faults -count=1 -timeout 20m ./test/faults/ -run TestFaultSuite -v"

// scenario is one fault scenario: it runs against real binaries, a real
// redis-server and real processes, and returns its rows of the table.
type scenario struct {
	name string
	run  func(t *testing.T) []row
	// label names the scenario in the table when it fails or is skipped
	// (it returns no rows then). Default: name.
	label string
}

// scenarios are every scenario of the suite, in the table's order: the
// faults of the first round (1-8), then one per case of "Reliability II"
// (II.1-II.8, II.R) and the randomized schedule.
var scenarios = []scenario{
	{name: "WorkersKilledEvery300msLoseNothing", run: scenarioKill9},
	{name: "ShardedJobWorkersKilledEvery300msLoseNothing", run: scenarioKill9Sharded},
	{name: "FastItemWorkersKilledEvery300msLoseNothing", run: scenarioKill9Fast},
	{name: "FrozenWorkerLateAcksAreRefused", run: scenarioSIGSTOP},
	{name: "RedisKilledWithAOFAlwaysKeepsEveryReportedItem", run: scenarioRedisAlways},
	{name: "RedisKilledWithAOFEverysecIsMeasured", run: scenarioRedisEverysec},
	{name: "PartitionedWorkerLateAcksAreRefused", run: scenarioPartition},
	{name: "PushThroughDroppedConnectionsAppendsEachItemOnce", run: scenarioPushCut},
	{name: "CoordinatorKilledAndRestartedJobCompletes", run: scenarioServeKill},
	{name: "RedisAtMaxmemoryRefusesPushAndWorkersFinish", run: scenarioMaxmemory},
	{name: "WorkerClocksOffByAnHourChangeNothing", run: scenarioClocks},
	{name: "HundredJobsMillionItemsBoundedWorkerMemory", run: scenarioManyJobs},
	{name: "ReplacedJobRefusesTheOldWorker", run: scenarioReplaced},
	{name: "ClientRetriesThroughDroppedConnectionsChargeNothing", run: scenarioRetries},
	{name: "RedisPausedLongerThanALeaseChargesNothing", run: scenarioPause},
	{name: "EvictionIsRefusedAndLostStateFails", run: scenarioEviction},
	{name: "KilledWorkerIsChargedOnlyForWhatStarted", run: scenarioStarted},
	{name: "HugeOutputAndBackgroundChildren", run: scenarioOutput},
	{name: "NoFalseAlarmsAndVanishedStateExits1", run: scenarioAlarms},
	{name: "ItemsGetNoCredentials", run: scenarioCredentials},
	{name: "RedisBackWithAnOlderStateCountsNothingThatDidNotRun", run: scenarioRollback,
		label: "II.R. Redis back with an older state (restart from an RDB snapshot)"},
	{name: "RandomFaultSchedule", run: scenarioChaos},
}

// TestFaultSuite runs every fault scenario one after another (they share
// the two cores), and prints one table. With WORKQ_WRITE_DOCS=1, and when
// every scenario ran and passed, the table goes into docs/RELIABILITY.md.
func TestFaultSuite(t *testing.T) {
	var rows []row
	began := time.Now()
	ran := 0
	for _, sc := range scenarios {
		var got []row
		started, skipped := false, ""
		ok := t.Run(sc.name, func(t *testing.T) {
			started = true
			t.Cleanup(func() {
				if t.Skipped() {
					skipped = "SKIPPED"
				}
			})
			got = sc.run(t)
		})
		if !started {
			continue // not selected by -run
		}
		ran++
		label := cmp.Or(sc.label, sc.name)
		switch {
		case !ok:
			got = append(got, row{Scenario: label + " (FAILED, see log)", Bound: -1})
		case skipped != "":
			got = append(got, row{Scenario: label + " (SKIPPED: it finds a bug; the reason is in the test's log)", Bound: -1})
		}
		rows = append(rows, got...)
	}
	table := renderTable(rows)
	t.Logf("fault suite (%s):\n%s", time.Since(began).Round(time.Second), table)
	fmt.Println(table)
	if os.Getenv("WORKQ_WRITE_DOCS") == "1" && !t.Failed() && ran == len(scenarios) {
		block := fmt.Sprintf("Produced by `%s`\non %s (%d CPUs, %s/%s), %s, the whole suite in %s:\n\n%s",
			docCommand, time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH,
			redisVersion(), time.Since(began).Round(time.Second), table)
		require.NoError(t, writeDocBlock("fault-table", block))
	}
}

func renderTable(rows []row) string {
	var b strings.Builder
	b.WriteString("| scenario | items | succeeded | lost | counted twice | executed twice (bound) | dead | faults | time to end | notes |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rows {
		bound := "reported"
		if r.Bound >= 0 {
			bound = fmt.Sprintf("≤ %d", r.Bound)
		}
		ttc := "-"
		switch {
		case r.TimeToComplete >= time.Second:
			ttc = r.TimeToComplete.Round(100 * time.Millisecond).String()
		case r.TimeToComplete > 0:
			ttc = r.TimeToComplete.Round(10 * time.Millisecond).String()
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d (%s) | %d | %d | %s | %s |\n",
			r.Scenario, r.Items, r.Succeeded, r.Lost, r.CountedTwice, r.ExecutedTwice, bound, r.Dead, r.Faults, ttc, r.Note)
	}
	return b.String()
}

// writeDocBlock replaces the generated block called name in
// docs/RELIABILITY.md (between <!-- name:begin --> and <!-- name:end -->).
func writeDocBlock(name, content string) error {
	path := filepath.Join("..", "..", "docs", "RELIABILITY.md")
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	begin, end := "<!-- "+name+":begin -->", "<!-- "+name+":end -->"
	s := string(old)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %s ... %s block", path, begin, end)
	}
	return os.WriteFile(path, []byte(s[:i]+begin+"\n"+content+end+s[j+len(end):]), 0o644)
}
