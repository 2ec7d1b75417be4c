// Package compose holds the end-to-end test of docker-compose.yml: it builds the
// workq image and a Redis image locally (no registry is needed), brings the
// stack up under a unique project name, and runs Jobs through it: the example
// Job, scaling and killing workers mid-run, and restarting Redis mid-run.
//
// The test needs the build tag and a Docker engine:
//
//	go test -tags compose -count=1 -timeout 15m ./test/compose/
//
// It skips, saying why, when no Docker engine answers or no Compose tool is
// installed. It uses Debian's busybox-static and redis-server packages for the
// images, and installs them with apt-get only when it runs as root with CI=true.
package compose
