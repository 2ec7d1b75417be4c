//go:build faults

package faults_test

import (
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

// TestFaultSuite runs every fault scenario against real binaries, a real
// redis-server and real processes, one after another (they share the two
// cores), and prints one table. With WORKQ_WRITE_DOCS=1 the table goes into
// docs/RELIABILITY.md.
func TestFaultSuite(t *testing.T) {
	scenarios := []struct {
		name string
		run  func(t *testing.T) []row
	}{
		{"WorkersKilledEvery300msLoseNothing", scenarioKill9},
		{"FrozenWorkerLateAcksAreRefused", scenarioSIGSTOP},
		{"RedisKilledWithAOFAlwaysKeepsEveryReportedItem", scenarioRedisAlways},
		{"RedisKilledWithAOFEverysecIsMeasured", scenarioRedisEverysec},
		{"PartitionedWorkerLateAcksAreRefused", scenarioPartition},
		{"PushThroughDroppedConnectionsAppendsEachItemOnce", scenarioPushCut},
		{"CoordinatorKilledAndRestartedJobCompletes", scenarioServeKill},
		{"RedisAtMaxmemoryRefusesPushAndWorkersFinish", scenarioMaxmemory},
		{"WorkerClocksOffByAnHourChangeNothing", scenarioClocks},
		{"HundredJobsMillionItemsBoundedWorkerMemory", scenarioManyJobs},
	}
	var rows []row
	began := time.Now()
	for _, sc := range scenarios {
		var got []row
		ok := t.Run(sc.name, func(t *testing.T) { got = sc.run(t) })
		if !ok {
			got = append(got, row{Scenario: sc.name + " (FAILED, see log)", Bound: -1})
		}
		rows = append(rows, got...)
	}
	table := renderTable(rows)
	t.Logf("fault suite (%s):\n%s", time.Since(began).Round(time.Second), table)
	fmt.Println(table)
	if os.Getenv("WORKQ_WRITE_DOCS") == "1" && !t.Failed() {
		require.NoError(t, writeDoc(table, time.Since(began)))
	}
}

func renderTable(rows []row) string {
	var b strings.Builder
	b.WriteString("| scenario | items | succeeded | lost | counted twice | executed twice (bound) | faults | time to Complete | notes |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rows {
		bound := "reported"
		if r.Bound >= 0 {
			bound = fmt.Sprintf("≤ %d", r.Bound)
		}
		ttc := "-"
		if r.TimeToComplete > 0 {
			ttc = r.TimeToComplete.Round(100 * time.Millisecond).String()
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d (%s) | %d | %s | %s |\n",
			r.Scenario, r.Items, r.Succeeded, r.Lost, r.CountedTwice, r.ExecutedTwice, bound, r.Faults, ttc, r.Note)
	}
	return b.String()
}

// writeDoc replaces the generated block of docs/RELIABILITY.md.
func writeDoc(table string, took time.Duration) error {
	path := filepath.Join("..", "..", "docs", "RELIABILITY.md")
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	const begin, end = "<!-- fault-table:begin -->", "<!-- fault-table:end -->"
	s := string(old)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %s ... %s block", path, begin, end)
	}
	block := fmt.Sprintf("%s\nProduced by `%s`\non %s (%d CPUs, %s/%s), %s, the whole suite in %s:\n\n%s%s",
		begin, docCommand, time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH,
		redisVersion(), took.Round(time.Second), table, end)
	return os.WriteFile(path, []byte(s[:i]+block+s[j+len(end):]), 0o644)
}
