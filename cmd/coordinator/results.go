package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/workq/workq/internal/cli"
	"github.com/workq/workq/internal/store"
)

func newResultsCmd(d deps) *cobra.Command {
	var format string
	var follow bool
	var limit int64
	cmd := &cobra.Command{
		Use:   "results NAME",
		Short: "Print a Job's item results (exit status and the end of stdout) in completion order",
		Long: `Print the results that workers started with --results (or run --results) kept
for a Job: for each finished run of an item, its id, attempt, exit status and
the end of its stdout, in the order they finished. The results live in a
Redis stream of the Job, capped at the --results count of its workers, and
expire or go with the Job. -o jsonl prints one JSON object a line; --follow
waits for more until the Job ends or Ctrl-C.`,
		Example: `  coordinator results thumbs
  coordinator results thumbs -o jsonl --follow | jq .output`,
		Args: cobra.ExactArgs(1),
		PreRunE: func(*cobra.Command, []string) error {
			if format != "table" && format != "jsonl" {
				return cli.Usagef("output format %q: use table or jsonl", format)
			}
			if limit < 0 {
				return cli.Usagef("--limit (%d) must not be negative", limit)
			}
			return nil
		},
		RunE: withJob(d, func(cmd *cobra.Command, c *store.Store, name string) error {
			ctx := cmd.Context()
			spec, _, err := c.Spec(ctx, name)
			if err != nil {
				return err
			}
			if spec.Shards > 1 {
				return cli.Usagef("%s is sharded: each of its %d shards keeps its own results; read them with `coordinator results %s` (and -shard-1, ...)",
					name, spec.Shards, store.ShardName(name, 0))
			}
			enc := json.NewEncoder(d.stdout)
			t := newTable(d.stdout)
			if format == "table" {
				t.row("ID", "ATTEMPT", "EXIT", "OUTPUT")
			}
			after, shown := "", int64(0)
			for {
				batch := int64(1000)
				if limit > 0 {
					batch = min(batch, limit-shown)
				}
				var wait time.Duration
				if follow {
					wait = time.Second
				}
				rs, err := c.Results(ctx, name, after, batch, wait)
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				for _, r := range rs {
					if format == "jsonl" {
						if err := enc.Encode(r); err != nil {
							return err
						}
					} else {
						t.row(strconv.FormatInt(r.ID, 10), strconv.Itoa(r.Attempt), strconv.Itoa(r.Exit), clip(strconv.Quote(r.Output), 100))
					}
					after = r.Seq
					shown++
				}
				if format == "table" {
					t.flush()
					t = newTable(d.stdout)
				}
				if limit > 0 && shown >= limit {
					return nil
				}
				if len(rs) == 0 {
					if !follow {
						if shown == 0 && format == "table" {
							fmt.Fprintf(d.stdout, "no results in %s; workers keep them with --results N\n", name)
						}
						return nil
					}
					st, err := c.Snapshot(ctx, name)
					if err != nil {
						return err
					}
					if st.Status.Phase.Finished() {
						return nil
					}
				}
			}
		}),
	}
	cmd.Flags().StringVarP(&format, "output", "o", "table", "output format: table or jsonl (one JSON object a line: seq, id, attempt, exit, output)")
	cmd.Flags().BoolVarP(&follow, "follow", "F", false, "wait for more results until the Job ends")
	cmd.Flags().Int64Var(&limit, "limit", 0, "print at most this many; 0 prints all")
	return cmd
}
