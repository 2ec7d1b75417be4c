package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/workq/workq/internal/cli"
	"github.com/workq/workq/internal/store"
)

func newSealCmd(d deps) *cobra.Command {
	return &cobra.Command{
		Use:   "seal NAME",
		Short: "Seal a Job: no more items; workers exit once it drains",
		Args:  cobra.ExactArgs(1),
		RunE: withJob(d, func(cmd *cobra.Command, c *store.Store, name string) error {
			sealed, err := c.Seal(cmd.Context(), name, "")
			if err != nil {
				return err
			}
			if !sealed {
				fmt.Fprintf(d.stdout, "%s was sealed already; nothing changed\n", name)
				return nil
			}
			fmt.Fprintf(d.stdout, "sealed %s\n", name)
			return nil
		}),
	}
}

func newDeleteCmd(d deps) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a Job and all its keys; its workers stop",
		Args:  cobra.ExactArgs(1),
		RunE: withJob(d, func(cmd *cobra.Command, c *store.Store, name string) error {
			if err := c.Delete(cmd.Context(), name); err != nil {
				return err
			}
			fmt.Fprintf(d.stdout, "deleted %s\n", name)
			return nil
		}),
	}
}

func newSuspendCmd(d deps, suspend bool) *cobra.Command {
	use, short := "resume NAME", "Resume a suspended Job: leases are handed out again and the active deadline restarts"
	if suspend {
		use, short = "suspend NAME", "Suspend a Job: no new leases; workers hand back what they have not started, running items finish, and workers wait"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: withJob(d, func(cmd *cobra.Command, c *store.Store, name string) error {
			verb, already := "resumed", "was not suspended"
			if suspend {
				verb, already = "suspended", "was suspended already"
			}
			changed, err := c.SetSuspended(cmd.Context(), name, suspend)
			if err != nil {
				return err
			}
			if !changed {
				fmt.Fprintf(d.stdout, "%s %s; nothing changed\n", name, already)
				return nil
			}
			fmt.Fprintf(d.stdout, "%s %s\n", verb, name)
			return nil
		}),
	}
}

func newVersionCmd(d deps) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(*cobra.Command, []string) {
			fmt.Fprintf(d.stdout, "workq coordinator %s (%s, %s/%s)\n", cli.BuildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}
