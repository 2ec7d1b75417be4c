package main

import (
	"context"
	"io"

	"github.com/spf13/cobra"

	"github.com/workq/workq/internal/cli"
	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/internal/workercmd"
)

// deps are what commands read and write; tests replace them.
type deps struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	redis  *cli.Redis
}

func (d deps) open(ctx context.Context) (*store.Store, error) { return d.redis.Open(ctx) }

func newRootCmd(d deps) *cobra.Command {
	d.redis = &cli.Redis{}
	root := &cobra.Command{
		Use:   "coordinator",
		Short: "Create, load, watch and control workq Jobs: parallel Jobs over a Redis work queue",
		Long: `coordinator is the control plane of workq. It creates Jobs and loads their
items into Redis, shows their state, runs the Job controller (serve), and
runs a whole parallel Job on this machine in one command (run).

Exit codes: 0 success, 1 the Job failed or a runtime error, 2 bad usage or input.`,
		Version: cli.BuildVersion(),
	}
	root.SetIn(d.stdin)
	root.SetOut(d.stdout)
	root.SetErr(d.stderr)
	d.redis.AddFlags(root.PersistentFlags())
	root.AddCommand(
		newCreateCmd(d), newPushCmd(d), newSealCmd(d), newStatusCmd(d), newListCmd(d),
		newWatchCmd(d), newDeadCmd(d), newRetryCmd(d), newDeleteCmd(d),
		newSuspendCmd(d, true), newSuspendCmd(d, false), newServeCmd(d), newRunCmd(d), newResultsCmd(d), newVersionCmd(d), newManCmd(d),
	)
	for _, c := range root.Commands() {
		switch c.Name() {
		case "push", "seal", "status", "watch", "dead", "retry", "delete", "suspend", "resume", "results":
			c.ValidArgsFunction = completeJobs(d)
		}
	}
	w := workercmd.New("worker", d.stdout, d.stderr)
	w.Hidden = true
	root.AddCommand(w)
	return root
}
