package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/workq/workq/internal/cli"
	"github.com/workq/workq/internal/controller"
	"github.com/workq/workq/internal/progress"
	"github.com/workq/workq/pkg/jobstate"
)

func newWatchCmd(d deps) *cobra.Command {
	var interval time.Duration
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "watch NAME",
		Short: "Show a Job's progress live until it ends; exit 0 when Complete, 1 when Failed",
		Long: `Show a Job's progress until it is Complete (exit 0) or Failed (exit 1): a
progress bar on a terminal, a plain line every few seconds otherwise.
watch also acts as the Job's controller while it runs (as serve does), so it
ends even where no serve runs; several controllers at once are safe.
With -o json it prints one status per refresh, one JSON object per line.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := cli.CheckName(name); err != nil {
				return err
			}
			if interval < 10*time.Millisecond {
				return cli.Usagef("--interval (%s) must be at least 10ms", interval)
			}
			if err := out.check(); err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := d.open(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := c.Status(ctx, name); err != nil {
				return suggest(ctx, c, name, err)
			}
			r := &controller.Reconciler{S: c, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			w := d.stdout
			if out.json() {
				w = io.Discard
			}
			bar := progress.New(w, -1, name)
			defer bar.Finish()
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				s, err := r.Step(ctx, name)
				if err != nil {
					if ctx.Err() != nil {
						return fmt.Errorf("interrupted; job %s goes on", name)
					}
					return err
				}
				if out.json() {
					if err := json.NewEncoder(d.stdout).Encode(s); err != nil {
						return err
					}
					if s.Phase.Finished() {
						return finished(io.Discard, s)
					}
				} else {
					bar.SetTotal(s.Items.Total)
					bar.Describe(fmt.Sprintf("%s %s", name, s.Phase), failures(s))
					bar.SetETA("ETA " + jobstate.FormatETA(jobstate.EstimateETA(s)))
					bar.Set(s.Items.Succeeded)
					if s.Phase.Finished() {
						bar.Finish()
						return finished(d.stdout, s)
					}
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("interrupted; job %s goes on", name)
				case <-t.C:
				}
			}
		},
	}
	cmd.Flags().DurationVar(&interval, "interval", 500*time.Millisecond, "how often to refresh")
	out.add(cmd.Flags())
	return cmd
}

// failures describes a Job's failures for a progress bar; empty while none.
func failures(s jobstate.Status) string {
	if s.Items.FailedAttempts == 0 {
		return ""
	}
	return fmt.Sprintf("(%s, %d dead)", plural(s.Items.FailedAttempts, "failed attempt"), s.Items.Dead)
}

// finished prints the end of a Job and returns an error when it failed.
func finished(w io.Writer, s jobstate.Status) error {
	took := "-"
	if s.StartTime != nil && s.CompletionTime != nil {
		took = s.CompletionTime.Sub(*s.StartTime).Round(time.Millisecond).String()
	}
	it := s.Items
	fmt.Fprintf(w, "%s: %s: %d/%d items succeeded, %d dead, %s, in %s\n",
		s.Name, paint(w, s.Phase), it.Succeeded, it.Total, it.Dead, plural(it.FailedAttempts, "failed attempt"), took)
	if s.Phase == jobstate.PhaseFailed {
		reason, msg := "", ""
		for _, c := range s.Conditions {
			if c.Type == jobstate.ConditionFailed {
				reason, msg = c.Reason, c.Message
			}
		}
		return fmt.Errorf("job %s failed: %s: %s", s.Name, reason, msg)
	}
	return nil
}
