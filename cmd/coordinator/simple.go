package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/workq/workq/internal/cli"
)

func newSealCmd(d deps) *cobra.Command {
	return &cobra.Command{
		Use:   "seal NAME",
		Short: "Seal a Job: no more items; workers exit once it drains",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cli.CheckName(args[0]); err != nil {
				return err
			}
			c, err := d.open(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.Seal(cmd.Context(), args[0]); err != nil {
				return suggest(cmd.Context(), c, args[0], err)
			}
			fmt.Fprintf(d.stdout, "sealed %s\n", args[0])
			return nil
		},
	}
}

func newDeleteCmd(d deps) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a Job and all its keys; its workers stop",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cli.CheckName(args[0]); err != nil {
				return err
			}
			c, err := d.open(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.Delete(cmd.Context(), args[0]); err != nil {
				return suggest(cmd.Context(), c, args[0], err)
			}
			fmt.Fprintf(d.stdout, "deleted %s\n", args[0])
			return nil
		},
	}
}

func newSuspendCmd(d deps, suspend bool) *cobra.Command {
	use, short := "resume NAME", "Resume a suspended Job: leases are handed out again and the active deadline restarts"
	if suspend {
		use, short = "suspend NAME", "Suspend a Job: no new leases; running items finish and workers wait"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cli.CheckName(args[0]); err != nil {
				return err
			}
			c, err := d.open(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			f, verb, already := c.Resume, "resumed", "was not suspended"
			if suspend {
				f, verb, already = c.Suspend, "suspended", "was suspended already"
			}
			changed, err := f(cmd.Context(), args[0])
			if err != nil {
				return suggest(cmd.Context(), c, args[0], err)
			}
			if !changed {
				fmt.Fprintf(d.stdout, "%s %s; nothing changed\n", args[0], already)
				return nil
			}
			fmt.Fprintf(d.stdout, "%s %s\n", verb, args[0])
			return nil
		},
	}
}

func newVersionCmd(d deps) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(*cobra.Command, []string) {
			fmt.Fprintf(d.stdout, "workq coordinator %s (%s, %s/%s)\n", cli.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}
