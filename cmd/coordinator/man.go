package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"

	"github.com/workq/workq/internal/cli"
	"github.com/workq/workq/internal/workercmd"
	"github.com/workq/workq/pkg/queue"
)

func newManCmd(d deps) *cobra.Command {
	return &cobra.Command{
		Use:   "man DIR",
		Short: "Write the man pages of coordinator and worker into DIR",
		Long: `Write one man page (section 1) per command into DIR, which is created if
needed: coordinator.1, coordinator-create.1, ..., and worker.1. Flag
defaults are shown as they are without WORKQ_* variables set, so no
setting of this environment (a Redis URL with its password, a token)
ends up in the pages. SOURCE_DATE_EPOCH sets the pages' date.

Shell completion is separate: coordinator completion bash|zsh|fish|powershell.`,
		Example: `  coordinator man ./man && man -l ./man/coordinator-push.1
  sudo coordinator man /usr/local/share/man/man1 && sudo mandb`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return cli.Usagef("man pages directory %s: %v; name a directory you can write", dir, err)
			}
			root := cmd.Root()
			root.InitDefaultCompletionCmd()
			worker := workercmd.New("worker", d.stdout, d.stderr)
			header := &doc.GenManHeader{Source: "workq " + cli.BuildVersion(), Manual: "workq manual"}
			var pages []string
			for _, c := range []*cobra.Command{root, worker} {
				c.DisableAutoGenTag = true
				scrubEnvDefaults(c, os.Getenv)
				if err := doc.GenManTree(c, header, dir); err != nil {
					return fmt.Errorf("write the man pages of %s into %s: %w", c.Name(), dir, err)
				}
				pages = append(pages, manPages(c)...)
			}
			slices.Sort(pages)
			for _, p := range pages {
				fmt.Fprintln(cmd.OutOrStdout(), filepath.Join(dir, p))
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %d man pages into %s; read one with: man -l %s\n",
				len(pages), dir, filepath.Join(dir, "coordinator.1"))
			return nil
		},
	}
}

// manPages lists the file names that doc.GenManTree writes for c: its own
// page and one per available subcommand, recursively.
func manPages(c *cobra.Command) []string {
	var out []string
	var walk func(*cobra.Command, string)
	walk = func(c *cobra.Command, prefix string) {
		name := prefix + c.Name()
		out = append(out, name+".1")
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() && !sub.IsAdditionalHelpTopicCommand() {
				walk(sub, name+"-")
			}
		}
	}
	walk(c, "")
	return out
}

// envInUsage finds the variable a flag's usage says it defaults from.
var envInUsage = regexp.MustCompile(`\benv (WORKQ_[A-Z_]+)`)

// scrubEnvDefaults resets the default shown for every flag of c and its
// subcommands whose default came from a WORKQ_* variable set in this
// environment, to the default it has when the variable is unset.
func scrubEnvDefaults(c *cobra.Command, getenv func(string) string) {
	scrub := func(f *pflag.Flag) {
		m := envInUsage.FindStringSubmatch(f.Usage)
		if m == nil || getenv(m[1]) == "" {
			return
		}
		f.DefValue = ""
		if f.Name == "redis" {
			f.DefValue = queue.DefaultURL
		}
	}
	c.Flags().VisitAll(scrub)
	c.PersistentFlags().VisitAll(scrub)
	for _, sub := range c.Commands() {
		scrubEnvDefaults(sub, getenv)
	}
}
