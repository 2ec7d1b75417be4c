// Package testkit is what the process-level test suites (test/e2e,
// test/faults, test/badinput, test/security, test/dashboard) share: it
// builds the real binaries once per test binary, starts them as processes
// with their output captured, waits for them with a timeout, snapshots the
// keys of a Job in Redis for "bad input changes nothing" checks, and counts
// the executions that item commands recorded. The in-process suites get
// their Redis here too: a miniredis store of the test's own (MiniStore) or
// the suite's one real redis-server (SharedRedis, RealStore), and a Clock
// that the test moves.
//
// A suite that runs the binaries makes Main its TestMain body and calls
// Build in the tests that need them:
//
//	func TestMain(m *testing.M) { testkit.Main(m, testkit.BuildOptions{}) }
//
//	func TestSomething(t *testing.T) {
//		bins := testkit.Build(t)
//		r := testkit.Run(t, time.Minute, testkit.Command{Bin: bins.Coordinator, Args: []string{"list"}})
//		require.Equal(t, 0, r.Code, r)
//	}
//
// Every process gets this process's environment without any WORKQ_*
// setting, plus what its Command adds, so that a developer's own settings
// never leak into a test. Everything here is safe for concurrent use unless
// its comment says otherwise.
package testkit
