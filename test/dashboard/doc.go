// Package dashboard tests the web dashboard as a person sees it: a real
// redis-server, a Job with in-process workers that make progress over a few
// seconds, the dashboard on a local port, and headless Chromium that loads
// the pages, runs their JavaScript and takes screenshots.
//
//	WORKQ_REQUIRE_REDIS=1 go test -count=1 ./test/dashboard/
//
// It needs redis-server and Debian's chromium (`apt-get install -y
// redis-server chromium`); without them it skips, saying why, unless
// WORKQ_REQUIRE_REDIS=1 or WORKQ_REQUIRE_CHROMIUM=1, where it fails. The
// screenshots go to $WORKQ_ARTIFACTS (default: the system's temporary
// directory under workq-dashboard); the test logs where.
package dashboard
