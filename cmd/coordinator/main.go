// Command coordinator creates and loads workq Jobs, shows their state, runs
// the Job controller (serve), and runs whole Jobs locally in one command
// (run). See `coordinator --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/workq/workq/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := cli.Main(ctx, newRootCmd(deps{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}), os.Stderr)
	stop()
	os.Exit(code)
}
