package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/workq/workq/internal/cli"
	"github.com/workq/workq/internal/progress"
	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/pkg/jobstate"
)

// outputFlag is -o: "table" (default) or "json".
type outputFlag struct{ format string }

func (o *outputFlag) add(fs *pflag.FlagSet) {
	fs.StringVarP(&o.format, "output", "o", "table", "output format: table or json (stable field names, for scripts)")
}

func (o *outputFlag) check() error {
	if o.format != "table" && o.format != "json" {
		return cli.Usagef("output format %q: use table or json", o.format)
	}
	return nil
}

func (o *outputFlag) json() bool { return o.format == "json" }

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// suggest adds "did you mean" to a missing-Job error.
func suggest(ctx context.Context, c *store.Store, name string, err error) error {
	if !errors.Is(err, store.ErrNoJob) {
		return err
	}
	names, _, lerr := c.Names(ctx)
	if lerr != nil {
		return err
	}
	// A name a typo away: up to two edits, fewer than the name has letters.
	best, bestD := "", min(3, len(name))
	for _, n := range names {
		if d := distance(name, n); d < bestD {
			best, bestD = n, d
		}
	}
	switch {
	case best != "":
		return cli.WithHint(fmt.Errorf("%w: %q; did you mean %q?", store.ErrNoJob, name, best), "")
	case len(names) == 0:
		return cli.WithHint(fmt.Errorf("%w: %q, and no Jobs exist", store.ErrNoJob, name), "`coordinator create NAME` makes one")
	}
	return cli.WithHint(fmt.Errorf("%w: %q", store.ErrNoJob, name),
		fmt.Sprintf("`coordinator list` shows the %d that exist", len(names)))
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// paint colours s on a terminal without NO_COLOR.
func paint(w io.Writer, phase jobstate.Phase) string {
	s := string(phase)
	if !progress.Color(w) {
		return s
	}
	code := map[jobstate.Phase]string{jobstate.PhaseComplete: "32", jobstate.PhaseFailed: "31", jobstate.PhaseFailing: "31",
		jobstate.PhaseRunning: "36", jobstate.PhaseSuspended: "33"}[phase]
	if code == "" {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func age(now time.Time, t *time.Time) string {
	if t == nil {
		return "-"
	}
	return now.Sub(*t).Round(time.Second).String()
}

func optInt(p *int) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

// printStatus writes the human view of one Job.
func printStatus(w io.Writer, s jobstate.Status) {
	tw := newTable(w)
	it := s.Items
	tw.row("Job:", fmt.Sprintf("%s (%s, incarnation %s)", s.Name, s.Kind, s.UID))
	tw.row("Phase:", paint(w, s.Phase))
	pct := 0.0
	if it.Total > 0 {
		pct = 100 * float64(it.Succeeded) / float64(it.Total)
	}
	tw.row("Progress:", fmt.Sprintf("%s %d/%d succeeded (%.1f%%)", bar(pct, 30), it.Succeeded, it.Total, pct))
	items := fmt.Sprintf("%d pending, %d leased, %d retrying, %d dead; %s, %s taken over",
		it.Pending, it.Leased, it.Retrying, it.Dead, plural(it.FailedAttempts, "failed attempt"), plural(it.Takeovers, "lease"))
	if it.Returned > 0 {
		items = fmt.Sprintf("%d returned (handed back, not started), ", it.Returned) + items
	}
	tw.row("Items:", items)
	tw.row("ETA:", eta(s))
	tw.row("Workers:", fmt.Sprintf("%d active of parallelism %d, %d ready, %d succeeded, %d failed (backoff limit %s)",
		s.Active, s.Spec.Parallelism, s.Ready, s.Succeeded, s.Failed, optInt(s.Spec.BackoffLimit)))
	tw.row("Sealed:", yesNo(s.Sealed)+"    Suspended: "+yesNo(s.Suspended))
	if s.Spec.Counted() {
		tw.row("Completed:", orDash(s.CompletedIndexes))
		tw.row("Failed:", orDash(s.FailedIndexes))
	}
	if s.StateLost != "" {
		tw.row("State lost:", s.StateLost)
	}
	sp := s.Spec
	spec := fmt.Sprintf("batch-size %d, lease %s, max-attempts %d, retry-backoff %s..%s", sp.BatchSize, sp.Lease, sp.MaxAttempts, sp.RetryBackoff, sp.RetryBackoffMax)
	if sp.Completions != nil {
		spec += fmt.Sprintf(", completions %d", *sp.Completions)
	}
	if sp.MaxFailedItems != nil {
		spec += fmt.Sprintf(", max-failed-items %d", *sp.MaxFailedItems)
	}
	if sp.ActiveDeadline > 0 {
		spec += fmt.Sprintf(", active-deadline %s", sp.ActiveDeadline)
	}
	if sp.TTLAfterFinished != nil {
		spec += fmt.Sprintf(", ttl-after-finished %s", *sp.TTLAfterFinished)
	}
	if sp.Speculative {
		spec += ", speculative"
	}
	tw.row("Spec:", spec)
	for i, r := range sp.FailurePolicy {
		tw.row(map[bool]string{true: "Failure policy:", false: ""}[i == 0], fmt.Sprintf("%d. %s", i+1, r))
	}
	for i, r := range sp.SuccessPolicy {
		tw.row(map[bool]string{true: "Success policy:", false: ""}[i == 0], fmt.Sprintf("%d. %s", i+1, r))
	}
	tw.row("Started:", timeAgo(s.Now, s.StartTime))
	tw.row("Completed at:", timeAgo(s.Now, s.CompletionTime))
	tw.row("Throughput:", fmt.Sprintf("%.1f items/s over the last minute", s.Throughput))
	if s.OldestPendingAge > 0 {
		tw.row("Oldest pending:", (time.Duration(s.OldestPendingAge * float64(time.Second))).Round(time.Second).String())
	}
	tw.flush()
	if len(s.Conditions) > 0 {
		fmt.Fprintln(w, "Conditions:")
		ct := newTable(w)
		ct.row("  TYPE", "STATUS", "REASON", "AGE", "MESSAGE")
		for _, c := range s.Conditions {
			ct.row("  "+string(c.Type), c.Status, orDash(c.Reason), s.Now.Sub(c.LastTransitionTime).Round(time.Second).String(), c.Message)
		}
		ct.flush()
	}
}

// eta is a Job's estimated time to the end, for people.
func eta(s jobstate.Status) string {
	d, ok := jobstate.EstimateETA(s)
	out := jobstate.FormatETA(d, ok)
	if !ok && !s.Sealed && !s.Spec.Counted() {
		out += " (not sealed: more items may come)"
	}
	return out
}

// plural writes n with its noun, "1 dead item", "2 dead items".
func plural[N int | int64](n N, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// wasWere writes n items with its verb: "1 item was", "2 items were".
func wasWere[N int | int64](n N) string {
	if n == 1 {
		return "1 item was"
	}
	return fmt.Sprintf("%d items were", n)
}

func timeAgo(now time.Time, t *time.Time) string {
	if t == nil {
		return "-"
	}
	return fmt.Sprintf("%s (%s ago)", t.Local().Format(time.DateTime), age(now, t))
}

func bar(pct float64, width int) string {
	n := int(pct / 100 * float64(width))
	n = min(max(n, 0), width)
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
