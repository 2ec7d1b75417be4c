package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/pkg/jobstate"
)

func newStatusCmd(d deps) *cobra.Command {
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Show a Job's phase, items, workers, spec and conditions",
		Long: `Show a Job's state, read in one atomic step. With -o json the fields are stable:
name, kind, phase, spec, sealed, suspended, done, items{total, pending, leased,
retrying, succeeded, dead, failedAttempts, takeovers}, leases, active, ready,
succeeded, failed (workers, as Kubernetes counts Pods), completedIndexes,
failedIndexes, startTime, completionTime, conditions[{type, status, reason,
message, lastTransitionTime}], throughput, oldestPendingAgeSeconds, now.`,
		Args:    cobra.ExactArgs(1),
		PreRunE: func(*cobra.Command, []string) error { return out.check() },
		RunE: withJob(d, func(cmd *cobra.Command, c *store.Store, name string) error {
			s, err := c.Status(cmd.Context(), name)
			if err != nil {
				return err
			}
			if out.json() {
				return writeJSON(d.stdout, s)
			}
			printStatus(d.stdout, s)
			return nil
		}),
	}
	out.add(cmd.Flags())
	return cmd
}

func newListCmd(d deps) *cobra.Command {
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List every Job, one line each",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check(); err != nil {
				return err
			}
			c, err := d.open(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			jobs, err := c.Jobs(cmd.Context())
			if err != nil {
				return err
			}
			all := make([]jobstate.Status, 0, len(jobs))
			for _, j := range jobs {
				switch {
				case errors.Is(j.Err, store.ErrNoJob):
					continue // deleted or expired meanwhile
				case j.Err != nil:
					fmt.Fprintf(d.stderr, "could not read job %s: %v\n", j.Name, j.Err)
					continue
				}
				all = append(all, j.Status)
			}
			all = c.WithGroups(cmd.Context(), all)
			if out.json() {
				return writeJSON(d.stdout, all)
			}
			if len(all) == 0 {
				fmt.Fprintln(d.stdout, "no Jobs; create one with `coordinator create NAME`")
				return nil
			}
			t := newTable(d.stdout)
			t.row("NAME", "KIND", "PHASE", "SUCCEEDED", "PENDING", "LEASED", "RETRYING", "DEAD", "WORKERS", "AGE")
			for _, s := range all {
				t.row(s.Name, string(s.Kind), paint(d.stdout, s.Phase), fmt.Sprintf("%d/%d", s.Items.Succeeded, s.Items.Total),
					fmt.Sprint(s.Items.Pending), fmt.Sprint(s.Items.Leased), fmt.Sprint(s.Items.Retrying), fmt.Sprint(s.Items.Dead),
					fmt.Sprintf("%d/%d", s.Active, s.Spec.Parallelism), age(s.Now, s.StartTime))
			}
			t.flush()
			return nil
		},
	}
	out.add(cmd.Flags())
	return cmd
}
