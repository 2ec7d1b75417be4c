package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/workq/workq/internal/cli"
	"github.com/workq/workq/internal/store"
)

func newCreateCmd(d deps) *cobra.Command {
	var sf specFlags
	var pf pushFlags
	var ifNotExists bool
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a Job (optionally loading items with -f)",
		Long: `Create a Job. NAME is a DNS label: lowercase letters, digits and '-'.
A work-queue Job takes items from push until it is sealed; with --completions K
it is a fixed completion count Job whose items are 0..K-1 (Indexed: each run
gets its index), sealed at once.`,
		Example: `  coordinator create thumbs --batch-size 50 --lease 30s --max-attempts 3
  coordinator create shards --completions 10 --parallelism 3
  coordinator create example --if-not-exists -f words.txt --seal`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := cli.CheckName(name); err != nil {
				return err
			}
			spec, err := sf.spec()
			if err != nil {
				return err
			}
			if err := pf.validate(); err != nil {
				return err
			}
			c, err := d.open(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			// The input is read and checked before the Job exists, so bad
			// input leaves nothing behind.
			src, err := pf.source(cmd.Context(), d, nil)
			if err != nil {
				return err
			}
			defer src.Close()
			_, err = c.Create(cmd.Context(), name, spec)
			switch {
			case ifNotExists && errors.Is(err, store.ErrExists):
				fmt.Fprintf(d.stdout, "job %s exists; nothing to do\n", name)
				return nil
			case err != nil:
				return err
			}
			fmt.Fprintf(d.stdout, "created job %s (%s)\n", name, spec.Kind())
			if src.empty() {
				if pf.seal && spec.Completions == nil {
					_, err := c.Seal(cmd.Context(), name, "")
					return err
				}
				return nil
			}
			return pf.push(cmd, d, c, name, src)
		},
	}
	sf.add(cmd.Flags(), 1)
	pf.add(cmd.Flags(), false)
	cmd.Flags().BoolVar(&ifNotExists, "if-not-exists", false, "exit 0 without changes when the Job exists (and skip -f)")
	cmd.Flags().BoolVar(&sf.suspend, "suspend", false, "create the Job suspended, as Kubernetes' spec.suspend: nothing runs until `coordinator resume NAME`")
	return cmd
}
