package jobstate

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Defaults of a Spec; a zero field takes these.
const (
	// DefaultBatchSize is the most items one lease may hold; leases adapt
	// below it to how long items take (see the worker).
	DefaultBatchSize       = 1000
	DefaultLease           = 30 * time.Second
	DefaultMaxAttempts     = 3
	DefaultBackoffLimit    = 6
	DefaultParallelism     = 1
	DefaultRetryBackoff    = time.Second
	DefaultRetryBackoffMax = 5 * time.Minute

	// MaxNameLength is the longest Job name: a Kubernetes DNS label.
	MaxNameLength = 63
	// MaxBatchSize bounds one lease: a Lua script unpacks this many values.
	MaxBatchSize = 5000
	// MinLease is the shortest lease; shorter ones cannot be heartbeated in time.
	MinLease = 100 * time.Millisecond
	// MaxShards bounds Spec.Shards: every worker registers with every shard.
	MaxShards = 64
)

// ErrInvalidSpec wraps every error of Spec.Validate and ValidateName.
var ErrInvalidSpec = errors.New("invalid job spec")

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// ValidateName reports whether name is a valid Job name: a Kubernetes DNS
// label (RFC 1123): at most 63 characters, lowercase letters, digits and '-',
// starting and ending with a letter or digit. The error wraps ErrInvalidSpec.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: job name is empty; give a name such as \"thumbs\"", ErrInvalidSpec)
	case len(name) > MaxNameLength:
		return fmt.Errorf("%w: job name %q is %d characters; use at most %d", ErrInvalidSpec, name, len(name), MaxNameLength)
	case !dnsLabel.MatchString(name):
		return fmt.Errorf("%w: job name %q is not a DNS label; use lowercase letters, digits and '-', starting and ending with a letter or digit", ErrInvalidSpec, name)
	}
	return nil
}

// Spec is what a Job is asked to do. Zero values take the defaults above;
// pointer fields are unset when nil, as in Kubernetes.
type Spec struct {
	// BatchSize is the most items one lease returns. Leases adapt below it:
	// many small items go in big batches, slow items one per free executor.
	// Default 1000.
	BatchSize int `json:"batchSize"`
	// Lease is how long a leased item stays with its worker without a
	// heartbeat. Default 30s.
	Lease Duration `json:"lease"`
	// MaxAttempts is how many times one item runs before it is dead. Default 3.
	MaxAttempts int `json:"maxAttempts"`
	// BackoffLimit is how many worker failures the Job tolerates. Default 6.
	BackoffLimit *int `json:"backoffLimit"`
	// Parallelism is how many workers run at once. Default 1.
	Parallelism int `json:"parallelism"`
	// Completions, when set, makes a fixed completion count Job with items
	// 0..K-1: Indexed (each run gets its index) unless CompletionMode is
	// NonIndexed. Unset (nil) is a work-queue Job.
	Completions *int `json:"completions"`
	// CompletionMode is Indexed (the default with Completions) or
	// NonIndexed (K successful runs, no index), as in Kubernetes.
	CompletionMode CompletionMode `json:"completionMode,omitempty"`
	// Suspend creates the Job suspended: no item runs until `resume`.
	Suspend bool `json:"suspend,omitempty"`
	// FailurePolicy decides, rule by rule in order, what an item's failure
	// does (as Kubernetes' podFailurePolicy). No matching rule: Count.
	FailurePolicy []FailureRule `json:"failurePolicy,omitempty"`
	// SuccessPolicy declares a fixed completion count Job succeeded once
	// any rule is met (as Kubernetes' successPolicy); the rest of its work
	// is stopped.
	SuccessPolicy []SuccessRule `json:"successPolicy,omitempty"`
	// Speculative lets an idle worker near the end of a Job run a copy of
	// an item that has run far longer than items usually take (a backup
	// task); the first to finish counts, the other is stopped. Default off.
	Speculative bool `json:"speculative,omitempty"`
	// MaxFailedItems fails the Job early when more items are dead. Unset: no limit.
	MaxFailedItems *int `json:"maxFailedItems"`
	// ActiveDeadline fails the Job this long after it started. Zero: none.
	ActiveDeadline Duration `json:"activeDeadline"`
	// TTLAfterFinished deletes a finished Job's keys after this long. Unset: kept.
	TTLAfterFinished *Duration `json:"ttlAfterFinished"`
	// RetryBackoff is the delay before the first retry of a failed item;
	// it doubles per attempt, with jitter, up to RetryBackoffMax. Default 1s.
	RetryBackoff Duration `json:"retryBackoff"`
	// RetryBackoffMax caps the retry delay. Default 5m.
	RetryBackoffMax Duration `json:"retryBackoffMax"`
	// Shards, above 1, spreads a work-queue Job over that many shards, each
	// a Job of its own in its own hash slot (NAME-shard-0, ...), so that one
	// Job can use more than one Redis core of a Cluster. Pushes deal items
	// over the shards, workers lease from all of them, and the Job's status
	// is their sum. Default 1: one slot.
	Shards int `json:"shards,omitempty"`
	// Group is set on a shard: the name of the sharded Job it belongs to.
	Group string `json:"group,omitempty"`
	// Shard is a shard's number within its Group, from 0.
	Shard int `json:"shard,omitempty"`
	// IndexBase is a shard's first index, for a sharded fixed completion
	// count Job: its items 0..Completions-1 are the Job's indexes
	// IndexBase.. (shards hold contiguous blocks of the indexes).
	IndexBase int `json:"indexBase,omitempty"`
}

// WithDefaults returns s with every zero field set to its default.
func (s Spec) WithDefaults() Spec {
	s.BatchSize = cmp.Or(s.BatchSize, DefaultBatchSize)
	s.Lease = cmp.Or(s.Lease, Duration(DefaultLease))
	s.MaxAttempts = cmp.Or(s.MaxAttempts, DefaultMaxAttempts)
	if s.BackoffLimit == nil {
		s.BackoffLimit = Ptr(DefaultBackoffLimit)
	}
	s.Parallelism = cmp.Or(s.Parallelism, DefaultParallelism)
	s.RetryBackoff = cmp.Or(s.RetryBackoff, Duration(DefaultRetryBackoff))
	s.RetryBackoffMax = cmp.Or(s.RetryBackoffMax, Duration(DefaultRetryBackoffMax))
	if s.Completions != nil {
		s.CompletionMode = cmp.Or(s.CompletionMode, CompletionIndexed)
	}
	return s
}

// Validate checks a defaulted spec and names the first bad field and its fix.
// The error wraps ErrInvalidSpec.
func (s Spec) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidSpec}, a...)...)
	}
	switch {
	case s.BatchSize < 1 || s.BatchSize > MaxBatchSize:
		return bad("batch-size (%d) must be between 1 and %d", s.BatchSize, MaxBatchSize)
	case s.Lease.D() < MinLease:
		return bad("lease (%s) must be at least %s", s.Lease, Duration(MinLease))
	case s.MaxAttempts < 1:
		return bad("max-attempts (%d) must be at least 1", s.MaxAttempts)
	case s.BackoffLimit != nil && *s.BackoffLimit < 0:
		return bad("backoff-limit (%d) must not be negative", *s.BackoffLimit)
	case s.Parallelism < 0:
		return bad("parallelism (%d) must not be negative", s.Parallelism)
	case s.Completions != nil && *s.Completions < 1:
		return bad("completions (%d) must be at least 1; leave it unset for a work-queue Job", *s.Completions)
	case s.MaxFailedItems != nil && *s.MaxFailedItems < 0:
		return bad("max-failed-items (%d) must not be negative", *s.MaxFailedItems)
	case s.ActiveDeadline < 0:
		return bad("active-deadline (%s) must not be negative", s.ActiveDeadline)
	case s.TTLAfterFinished != nil && *s.TTLAfterFinished < 0:
		return bad("ttl-after-finished (%s) must not be negative", *s.TTLAfterFinished)
	case s.RetryBackoff <= 0:
		return bad("retry-backoff (%s) must be positive", s.RetryBackoff)
	case s.RetryBackoffMax < s.RetryBackoff:
		return bad("retry-backoff-max (%s) must not be shorter than retry-backoff (%s)", s.RetryBackoffMax, s.RetryBackoff)
	case s.CompletionMode != "" && s.Completions == nil:
		return bad("completion-mode (%s) needs completions; set --completions K", s.CompletionMode)
	case s.CompletionMode != "" && s.CompletionMode != CompletionIndexed && s.CompletionMode != CompletionNonIndexed:
		return bad("completion-mode (%s) must be Indexed or NonIndexed", s.CompletionMode)
	case s.Shards < 0 || s.Shards > MaxShards:
		return bad("shards (%d) must be between 1 and %d", s.Shards, MaxShards)
	case s.Shards > 1 && s.Completions != nil && *s.Completions < s.Shards:
		return bad("shards (%d) must not be more than completions (%d): each shard holds at least one index", s.Shards, *s.Completions)
	case s.Shards > 1 && len(s.SuccessPolicy) > 0:
		return bad("shards (%d) with success-policy: a success policy looks at every index at once, which a sharded Job keeps in %d slots; run the Job in one slot", s.Shards, s.Shards)
	case s.IndexBase < 0 || (s.IndexBase > 0 && (s.Group == "" || s.Completions == nil)):
		return bad("index base (%d) is only for a shard of a sharded fixed completion count Job", s.IndexBase)
	case s.Shards > 1 && s.TTLAfterFinished != nil:
		return bad("shards (%d) with ttl-after-finished: a sharded Job's shards finish at different times, so they are not expired; leave --ttl-after-finished unset and delete the Job with `coordinator delete`", s.Shards)
	case s.Shards > 1 && s.Group != "":
		return bad("shards (%d): shard %d of %q cannot be sharded again", s.Shards, s.Shard, s.Group)
	case len(s.SuccessPolicy) > 0 && (s.Completions == nil || s.CompletionMode == CompletionNonIndexed):
		return bad("success-policy (%s) needs an Indexed Job; set --completions K (and not --completion-mode NonIndexed), as Kubernetes allows successPolicy only with completionMode Indexed", s.SuccessPolicy[0])
	}
	for _, r := range s.FailurePolicy {
		if err := r.validate(); err != nil {
			return bad("failure-policy (%s) %v", r, err)
		}
	}
	for _, r := range s.SuccessPolicy {
		if err := r.validate(s); err != nil {
			return bad("success-policy (%s) %v", r, err)
		}
	}
	return nil
}

// Kind is the kind of a Job, derived from its spec.
type Kind string

// The kinds of Job.
const (
	KindWorkQueue  Kind = "WorkQueue"
	KindIndexed    Kind = "Indexed"
	KindNonIndexed Kind = "NonIndexed"
)

// CompletionMode is how a fixed completion count Job counts, as in
// Kubernetes: each index once (Indexed), or K successes (NonIndexed).
type CompletionMode string

// The completion modes.
const (
	CompletionIndexed    CompletionMode = "Indexed"
	CompletionNonIndexed CompletionMode = "NonIndexed"
)

// Kind tells whether s is a work-queue, an Indexed or a NonIndexed fixed
// completion count Job.
func (s Spec) Kind() Kind {
	switch {
	case s.Completions == nil:
		return KindWorkQueue
	case s.CompletionMode == CompletionNonIndexed:
		return KindNonIndexed
	}
	return KindIndexed
}

// Counted reports whether s is a fixed completion count Job (Indexed or
// NonIndexed): its items are generated, not pushed.
func (s Spec) Counted() bool { return s.Completions != nil }

// Backoff is the delay before retry number attempt (1 for the first retry),
// given jitter in [0,1): base*2^(attempt-1), capped at RetryBackoffMax, then
// scaled into [delay/2, delay) so that retries of one batch spread out.
func (s Spec) Backoff(attempt int, jitter float64) time.Duration {
	d := s.RetryBackoff.D()
	limit := s.RetryBackoffMax.D()
	for i := 1; i < attempt && d < limit; i++ {
		d += min(d, limit-d) // doubles, or stops at the cap without overflowing
	}
	d = min(d, limit)
	return d/2 + time.Duration(jitter*float64(d/2))
}

// Ptr returns a pointer to v, for the optional fields of Spec.
func Ptr[T any](v T) *T { return &v }

// Duration is a time.Duration that reads and writes as "30s" in JSON.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes d as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads a Go duration string such as "1m30s".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: use a number with a unit, such as 30s or 5m", b)
	}
	*d = Duration(v)
	return nil
}
