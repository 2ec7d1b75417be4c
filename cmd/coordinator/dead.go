package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/workq/workq/internal/cli"
	"github.com/workq/workq/internal/store"
)

func newDeadCmd(d deps) *cobra.Command {
	var out outputFlag
	var limit int
	cmd := &cobra.Command{
		Use:   "dead NAME",
		Short: "List a Job's dead items with their attempts and last error",
		Args:  cobra.ExactArgs(1),
		PreRunE: func(*cobra.Command, []string) error {
			if limit < 0 {
				return cli.Usagef("--limit (%d) must not be negative", limit)
			}
			return out.check()
		},
		RunE: withJob(d, func(cmd *cobra.Command, c *store.Store, name string) error {
			if _, _, err := c.Spec(cmd.Context(), name); err != nil {
				return err
			}
			dead, err := c.Dead(cmd.Context(), name, limit)
			if err != nil {
				return err
			}
			if out.json() {
				if dead == nil {
					dead = []store.DeadItem{}
				}
				return writeJSON(d.stdout, dead)
			}
			if len(dead) == 0 {
				fmt.Fprintf(d.stdout, "no dead items in %s\n", name)
				return nil
			}
			t := newTable(d.stdout)
			t.row("ID", "ATTEMPTS", "ITEM", "LAST ERROR")
			for _, it := range dead {
				t.row(it.Ref(), strconv.Itoa(it.Attempts), clip(strconv.Quote(it.Item), 40), clipHead(oneLine(it.LastError), 100))
			}
			t.flush()
			return nil
		}),
	}
	out.add(cmd.Flags())
	cmd.Flags().IntVar(&limit, "limit", 100, "show at most this many; 0 shows all")
	return cmd
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// clipHead shortens s to n bytes by dropping its start: an item's error ends
// with the tail of its stderr, where the cause is.
func clipHead(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n+3:]
}

func newRetryCmd(d deps) *cobra.Command {
	var reopen bool
	cmd := &cobra.Command{
		Use:   "retry NAME",
		Short: "Put a Job's dead items back with fresh attempts",
		Long: `Put every dead item back, ready now with fresh attempts, two hundred per call
so Redis is never held for long. A Job that is still running just gets them
back. A finished Job (Complete or Failed) is final, as in Kubernetes: it is
reopened only with --reopen, which returns it to Running with a Reopened
condition (its terminal conditions, done flag and worker-failure count are
cleared); start workers again to process the items. A running serve notices a
reopened Job within 10 seconds.`,
		Args: cobra.ExactArgs(1),
		RunE: withJob(d, func(cmd *cobra.Command, c *store.Store, name string) error {
			n, err := c.RetryDead(cmd.Context(), name, reopen)
			if errors.Is(err, store.ErrFinished) {
				return cli.WithHint(err, fmt.Sprintf("`coordinator retry %s --reopen` reopens it and runs its dead items again", name))
			}
			if err != nil {
				return err
			}
			if n == 0 {
				fmt.Fprintf(d.stdout, "no dead items in %s; nothing changed\n", name)
				return nil
			}
			fmt.Fprintf(d.stdout, "put %s back into %s; start workers to process them\n", plural(n, "dead item"), name)
			return nil
		}),
	}
	cmd.Flags().BoolVar(&reopen, "reopen", false, "reopen a finished Job (Complete or Failed) to run its dead items again")
	return cmd
}
