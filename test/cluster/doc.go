// Package cluster holds the end-to-end tests of workq on a Redis Cluster and
// on a primary and replica watched by Redis Sentinel. They start the servers
// on loopback ports (internal/redistest), build the real coordinator and
// worker binaries (internal/testkit) and run them as processes through
// cluster and redis+sentinel:// URLs:
//
//   - 20 Jobs spread over the three primaries of a Cluster run to Complete
//     while one primary is killed and started again on its AOF; every item
//     is counted once against a log its command appends to, and list,
//     status, serve's /api/jobs and /metrics see every Job, also through a
//     single node's URL;
//   - a Job runs to Complete while Sentinel fails the primary over to its
//     replica, once with the workers' default asynchronous acks and once
//     with --ack-replicas 1, measuring the items that ran twice;
//   - Cluster and Sentinel settings that cannot work fail with one line and
//     the documented exit code.
//
// They need the build tag and redis-server (which runs the Sentinels too):
//
//	WORKQ_REQUIRE_REDIS=1 go test -tags cluster -count=1 -timeout 15m ./test/cluster/
//
// WORKQ_WRITE_DOCS=1 with -run TestSentinelFailover writes the measured
// table into docs/RELIABILITY.md.
package cluster
