package main

import (
	"github.com/spf13/cobra"

	"github.com/workq/workq/internal/cli"
	"github.com/workq/workq/internal/store"
)

// withJob makes the RunE of a command whose one argument is a Job name: it
// checks the name, opens Redis, runs f, and turns a missing Job into a
// "did you mean" error.
func withJob(d deps, f func(cmd *cobra.Command, c *store.Store, name string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		name := args[0]
		if err := cli.CheckName(name); err != nil {
			return err
		}
		c, err := d.open(cmd.Context())
		if err != nil {
			return err
		}
		defer c.Close()
		if err := f(cmd, c, name); err != nil {
			return suggest(cmd.Context(), c, name, err)
		}
		return nil
	}
}
