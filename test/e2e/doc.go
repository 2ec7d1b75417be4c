// Package e2e holds the end-to-end tests of workq: they build the real
// coordinator and worker binaries once (internal/testkit), run them as
// processes against real redis-server processes (one per test,
// internal/redistest),
// and check what a user would see: exit codes, output, files written by the
// items' commands, and the Job's state in Redis.
//
// Run them with a real Redis required:
//
//	WORKQ_REQUIRE_REDIS=1 go test -race -count=1 ./test/e2e/
//
// WORKQ_E2E_RACE=1 builds the binaries with the race detector too.
//
// Without redis-server installed (and without WORKQ_REQUIRE_REDIS=1) the
// tests skip.
package e2e
