package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"github.com/workq/workq/pkg/jobstate"
)

// Create creates a Job with a defaulted, validated spec. An Indexed Job
// (Completions set) is sealed at once: its items are the indexes
// 0..Completions-1, generated as workers lease them. It returns ErrExists
// when the name is taken, or an error wrapping jobstate.ErrInvalidSpec.
func (c *Client) Create(ctx context.Context, name string, spec jobstate.Spec) error {
	if err := jobstate.ValidateName(name); err != nil {
		return err
	}
	spec = spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return err
	}
	js, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("create %q: %w", name, err)
	}
	ms := func(d jobstate.Duration) string { return strconv.FormatInt(d.D().Milliseconds(), 10) }
	sealed := "0"
	args := []any{sealed, "json", string(js), "batchSize", spec.BatchSize, "leaseMs", ms(spec.Lease),
		"maxAttempts", spec.MaxAttempts, "backoffLimit", *spec.BackoffLimit, "parallelism", spec.Parallelism,
		"activeDeadlineMs", ms(spec.ActiveDeadline), "retryBackoffMs", ms(spec.RetryBackoff),
		"retryBackoffMaxMs", ms(spec.RetryBackoffMax)}
	if spec.Completions != nil {
		args[0] = "1"
		args = append(args, "completions", *spec.Completions)
	}
	if spec.MaxFailedItems != nil {
		args = append(args, "maxFailedItems", *spec.MaxFailedItems)
	}
	if spec.TTLAfterFinished != nil {
		args = append(args, "ttlMs", ms(*spec.TTLAfterFinished))
	}
	// The registry entry goes first: if the script then fails, List drops
	// the name, while a Job without its entry would be invisible.
	if err := c.rdb.SAdd(ctx, jobsKey, name).Err(); err != nil {
		return fmt.Errorf("create %q: %w", name, classify(err))
	}
	v, err := c.run(ctx, createScript, name, args...)
	if err != nil {
		return fmt.Errorf("create %q: %w", name, err)
	}
	if v.(int64) == 0 {
		return fmt.Errorf("%w: %q; pick another name, or `coordinator delete %s` first", ErrExists, name, name)
	}
	return nil
}

// Spec returns a Job's spec. It returns ErrNoJob when the Job is missing.
func (c *Client) Spec(ctx context.Context, name string) (jobstate.Spec, error) {
	raw, err := c.rdb.HGet(ctx, keysFor(name).spec, "json").Result()
	if err != nil {
		return jobstate.Spec{}, fmt.Errorf("read spec of %q: %w", name, scriptError(name, err))
	}
	var s jobstate.Spec
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return jobstate.Spec{}, fmt.Errorf("read spec of %q: %w", name, err)
	}
	return s, nil
}

// Seal marks a Job as fully loaded: pushes are refused from now on and
// workers may finish once the queue drains. Sealing twice is harmless.
// It returns ErrNoJob.
func (c *Client) Seal(ctx context.Context, name string) error {
	if _, err := c.run(ctx, sealScript, name); err != nil {
		return fmt.Errorf("seal %q: %w", name, err)
	}
	return nil
}

// Suspend stops a Job from handing out leases; running items finish.
// It returns true when the Job was running, and ErrNoJob or ErrFinished.
func (c *Client) Suspend(ctx context.Context, name string) (bool, error) {
	v, err := c.run(ctx, suspendScript, name, "suspend")
	if err != nil {
		return false, fmt.Errorf("suspend %q: %w", name, err)
	}
	return v.(int64) == 1, nil
}

// Resume lets a suspended Job hand out leases again and restarts its active
// deadline. It returns true when the Job was suspended.
func (c *Client) Resume(ctx context.Context, name string) (bool, error) {
	v, err := c.run(ctx, suspendScript, name, "resume")
	if err != nil {
		return false, fmt.Errorf("resume %q: %w", name, err)
	}
	return v.(int64) == 1, nil
}

// RetryDead puts every dead item back with fresh attempts and returns the
// Job to Running. It returns how many items came back, and ErrNoJob.
func (c *Client) RetryDead(ctx context.Context, name string) (int, error) {
	v, err := c.run(ctx, retryDeadScript, name)
	if err != nil {
		return 0, fmt.Errorf("retry dead items of %q: %w", name, err)
	}
	return int(v.(int64)), nil
}

// Delete removes every key of a Job. Workers of the Job stop. It returns
// ErrNoJob when there was nothing to delete.
func (c *Client) Delete(ctx context.Context, name string) error {
	v, err := c.run(ctx, deleteScript, name)
	if err != nil {
		return fmt.Errorf("delete %q: %w", name, err)
	}
	if err := c.rdb.SRem(ctx, jobsKey, name).Err(); err != nil {
		return fmt.Errorf("delete %q: %w", name, classify(err))
	}
	if v.(int64) == 0 {
		return fmt.Errorf("delete: %w: %q", ErrNoJob, name)
	}
	return nil
}

// Names lists the Jobs that exist, sorted. Names whose Job has expired
// (ttlAfterFinished) are dropped from the registry on the way.
func (c *Client) Names(ctx context.Context) ([]string, error) {
	names, err := c.rdb.SMembers(ctx, jobsKey).Result()
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", classify(err))
	}
	sort.Strings(names)
	out := names[:0]
	for _, n := range names {
		ok, err := c.rdb.Exists(ctx, keysFor(n).spec).Result()
		if err != nil {
			return nil, fmt.Errorf("list jobs: %w", classify(err))
		}
		if ok == 1 {
			out = append(out, n)
			continue
		}
		if err := c.rdb.SRem(ctx, jobsKey, n).Err(); err != nil {
			return nil, fmt.Errorf("list jobs: %w", classify(err))
		}
	}
	return out, nil
}
