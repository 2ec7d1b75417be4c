// Command worker leases a workq Job's items in batches, runs a command for
// each, and exits 0 once the Job is drained. See `worker --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/workq/workq/internal/cli"
	"github.com/workq/workq/internal/workercmd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := cli.Main(ctx, workercmd.New("worker", os.Stdout, os.Stderr), os.Stderr)
	stop()
	os.Exit(code)
}
