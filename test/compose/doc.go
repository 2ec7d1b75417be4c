// Package compose holds the end-to-end test of docker-compose.yml: it builds
// the workq image and a Redis image with deploy/docker/build-images.sh (no
// registry is needed), checks them and that a second run of the script
// changes nothing, brings the stack up under a unique project name, and runs
// Jobs through it: the example Job, scaling and killing workers mid-run, and
// restarting Redis mid-run. Its images have tags of their own, removed at the
// end.
//
// The test needs the build tag and a Docker engine:
//
//	go test -tags compose -count=1 -timeout 20m ./test/compose/
//
// It skips, saying why, when no Docker engine answers or no Compose tool is
// installed. The script uses Debian's busybox-static and redis-tools
// packages; the test lets it install them with apt-get only when it runs as
// root with CI=true, and otherwise skips, saying what to install.
package compose
