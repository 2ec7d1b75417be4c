package main

import (
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/workq/workq/internal/cli"
	"github.com/workq/workq/pkg/jobstate"
)

// specFlags are the Job spec flags of create and run.
type specFlags struct {
	fs               *pflag.FlagSet
	batchSize        int
	lease            time.Duration
	maxAttempts      int
	backoffLimit     int
	parallelism      int
	completions      int
	maxFailedItems   int
	activeDeadline   time.Duration
	ttlAfterFinished time.Duration
	retryBackoff     time.Duration
	retryBackoffMax  time.Duration
	completionMode   string
	suspend          bool
	failurePolicy    []string
	successPolicy    []string
	speculative      bool
	shards           int
}

func (f *specFlags) add(fs *pflag.FlagSet, parallelismDefault int) {
	f.fs = fs
	fs.IntVar(&f.batchSize, "batch-size", jobstate.DefaultBatchSize, "the most items one lease holds; leases adapt below it (slow items one per free worker, many small items in big batches)")
	fs.DurationVar(&f.lease, "lease", jobstate.DefaultLease, "how long a worker holds leased items without a heartbeat; a crashed worker's items return after this")
	fs.IntVar(&f.maxAttempts, "max-attempts", jobstate.DefaultMaxAttempts, "runs of one item before it is dead")
	fs.IntVar(&f.backoffLimit, "backoff-limit", jobstate.DefaultBackoffLimit, "worker failures (crashes, lost heartbeats, non-zero exits) before the Job fails with BackoffLimitExceeded")
	fs.IntVarP(&f.parallelism, "parallelism", "p", parallelismDefault, "workers at once (run starts this many; status shows active against it)")
	fs.IntVar(&f.completions, "completions", 0, "make a fixed completion count Job of K items 0..K-1, each run until it succeeds once (Indexed: each run gets its index); unset is a work-queue Job")
	fs.StringVar(&f.completionMode, "completion-mode", "", "with --completions: Indexed (default; JOB_COMPLETION_INDEX is set) or NonIndexed (K successful runs, no index)")
	fs.StringArrayVar(&f.failurePolicy, "failure-policy", nil, "a failure policy rule, ACTION:CONDITION, tried in order like Kubernetes' podFailurePolicy: "+
		"ACTION is FailJob, FailIndex, Ignore (retry without using an attempt) or Count; CONDITION is exit=CODES, exit!=CODES, timeout or shutdown "+
		"(repeatable; e.g. --failure-policy FailJob:exit=42 --failure-policy Ignore:exit=75)")
	fs.StringArrayVar(&f.successPolicy, "success-policy", nil, "with --completions: a success policy rule like Kubernetes' successPolicy, indexes=0-3,5 and/or count=N joined by ';'; "+
		"the Job succeeds once any rule is met and its other items stop (repeatable)")
	fs.BoolVar(&f.speculative, "speculative", false, "near the end, let an idle worker run a backup copy of an item that runs far longer than items usually take; the first to finish counts")
	fs.IntVar(&f.maxFailedItems, "max-failed-items", 0, "fail the Job early with MaxFailedItemsExceeded once more items than this are dead; unset is no limit")
	fs.DurationVar(&f.activeDeadline, "active-deadline", 0, "fail the Job with DeadlineExceeded this long after it started; 0 is none")
	fs.DurationVar(&f.ttlAfterFinished, "ttl-after-finished", 0, "delete a finished Job's keys this long after it ended; unset keeps them")
	fs.DurationVar(&f.retryBackoff, "retry-backoff", jobstate.DefaultRetryBackoff, "delay before the first retry of a failed item; it doubles per attempt, with jitter")
	fs.IntVar(&f.shards, "shards", 1, "spread the Job over this many shards (NAME-shard-0, ...), each in its own Redis Cluster slot, so one Job can use more than one Redis node; pushes deal items over them (an Indexed Job's shards get contiguous blocks of indexes), workers lease from all, status sums them")
	fs.DurationVar(&f.retryBackoffMax, "retry-backoff-max", jobstate.DefaultRetryBackoffMax, "longest delay between retries of an item")
}

// spec builds the Job spec; unset optional flags stay unset.
func (f *specFlags) spec() (jobstate.Spec, error) {
	s := jobstate.Spec{
		BatchSize:       f.batchSize,
		Lease:           jobstate.Duration(f.lease),
		MaxAttempts:     f.maxAttempts,
		BackoffLimit:    jobstate.Ptr(f.backoffLimit),
		Parallelism:     f.parallelism,
		ActiveDeadline:  jobstate.Duration(f.activeDeadline),
		RetryBackoff:    jobstate.Duration(f.retryBackoff),
		RetryBackoffMax: jobstate.Duration(f.retryBackoffMax),
	}
	if f.fs.Changed("completions") {
		s.Completions = jobstate.Ptr(f.completions)
	}
	switch strings.ToLower(f.completionMode) {
	case "":
	case "indexed":
		s.CompletionMode = jobstate.CompletionIndexed
	case "nonindexed":
		s.CompletionMode = jobstate.CompletionNonIndexed
	default:
		return s, cli.Usagef("--completion-mode %q: use Indexed or NonIndexed", f.completionMode)
	}
	for _, r := range f.failurePolicy {
		rule, err := jobstate.ParseFailureRule(r)
		if err != nil {
			return s, cli.UsageError{Err: err}
		}
		s.FailurePolicy = append(s.FailurePolicy, rule)
	}
	for _, r := range f.successPolicy {
		rule, err := jobstate.ParseSuccessRule(r)
		if err != nil {
			return s, cli.UsageError{Err: err}
		}
		s.SuccessPolicy = append(s.SuccessPolicy, rule)
	}
	s.Suspend = f.suspend
	s.Speculative = f.speculative
	if f.shards < 1 {
		return s, cli.Usagef("--shards (%d) must be at least 1", f.shards)
	}
	s.Shards = f.shards
	if f.fs.Changed("max-failed-items") {
		s.MaxFailedItems = jobstate.Ptr(f.maxFailedItems)
	}
	if f.fs.Changed("ttl-after-finished") {
		s.TTLAfterFinished = jobstate.Ptr(jobstate.Duration(f.ttlAfterFinished))
	}
	// Zero means "default" inside Spec; here a zero given on purpose is an error.
	for _, z := range []struct {
		name string
		bad  bool
	}{{"batch-size", f.batchSize <= 0}, {"lease", f.lease <= 0}, {"max-attempts", f.maxAttempts <= 0}, {"retry-backoff", f.retryBackoff <= 0}, {"retry-backoff-max", f.retryBackoffMax <= 0}} {
		if z.bad {
			return s, cli.Usagef("--%s must be positive", z.name)
		}
	}
	switch {
	case f.parallelism < 0:
		return s, cli.Usagef("--parallelism (%d) must not be negative", f.parallelism)
	case f.parallelism == 0:
		// Kubernetes pauses a Job with parallelism 0; workq has suspend
		// for that, and a zero here must not quietly become the default.
		return s, cli.Usagef("--parallelism 0 would pause the Job; give at least 1, and pause a Job with `coordinator suspend NAME`")
	}
	s = s.WithDefaults()
	if err := s.Validate(); err != nil {
		return s, cli.UsageError{Err: err}
	}
	return s, nil
}
