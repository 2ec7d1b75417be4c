package jobstate_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/pkg/jobstate"
)

// dnsLabel is an independent statement of RFC 1123 labels.
func dnsLabel(s string) bool {
	if len(s) < 1 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '-' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

// FuzzValidateName: ValidateName accepts exactly DNS labels, and its
// refusals wrap ErrInvalidSpec; it never panics.
func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"thumbs", "a", "0", "a-b", "a--b", "-a", "a-", "-", "A", "a_b", "a.b", "", " ",
		strings.Repeat("x", 63), strings.Repeat("x", 64), "jöb", "a\n", "a\x00", "{a}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := jobstate.ValidateName(name)
		if dnsLabel(name) {
			require.NoError(t, err, "%q", name)
			return
		}
		require.ErrorIs(t, err, jobstate.ErrInvalidSpec, "%q", name)
		require.ErrorContains(t, err, "job name")
	})
}

// FuzzSpec: Validate never panics, accepts a spec exactly when every field
// is within its documented range, and names a field when it refuses;
// WithDefaults makes any spec whose set fields are valid valid; a valid
// spec survives a JSON round trip.
func FuzzSpec(f *testing.F) {
	f.Add(10, int64(30_000), 3, 6, true, 1, 0, false, 0, false, int64(0), int64(0), false, int64(1000), int64(300_000))
	f.Add(0, int64(0), 0, 0, false, 0, 0, false, 0, false, int64(0), int64(0), false, int64(0), int64(0))
	f.Add(-1, int64(99), -1, -1, true, -1, 0, true, -1, true, int64(-1), int64(-1), true, int64(-1), int64(-2))
	f.Add(5001, int64(100), 1, 0, true, 0, 1, true, 0, true, int64(1), int64(0), true, int64(5), int64(5))
	f.Add(1, int64(100), 1, 0, false, 0, 0, false, 0, false, int64(0), int64(0), false, int64(1), int64(9_223_372_036_854)) // a cap near the int64 limit
	f.Fuzz(func(t *testing.T, batch int, leaseMs int64, maxAtt, backoff int, hasBackoff bool, par, comp int, hasComp bool,
		maxFailed int, hasMaxFailed bool, adlMs, ttlMs int64, hasTTL bool, rbMs, rbmMs int64) {
		ms := func(v int64) jobstate.Duration { return jobstate.Duration(time.Duration(v) * time.Millisecond) }
		s := jobstate.Spec{BatchSize: batch, Lease: ms(leaseMs), MaxAttempts: maxAtt, Parallelism: par,
			ActiveDeadline: ms(adlMs), RetryBackoff: ms(rbMs), RetryBackoffMax: ms(rbmMs)}
		if hasBackoff {
			s.BackoffLimit = jobstate.Ptr(backoff)
		}
		if hasComp {
			s.Completions = jobstate.Ptr(comp)
		}
		if hasMaxFailed {
			s.MaxFailedItems = jobstate.Ptr(maxFailed)
		}
		if hasTTL {
			s.TTLAfterFinished = jobstate.Ptr(ms(ttlMs))
		}

		valid := func(s jobstate.Spec) bool {
			return s.BatchSize >= 1 && s.BatchSize <= jobstate.MaxBatchSize &&
				s.Lease.D() >= jobstate.MinLease &&
				s.MaxAttempts >= 1 &&
				(s.BackoffLimit == nil || *s.BackoffLimit >= 0) &&
				s.Parallelism >= 0 &&
				(s.Completions == nil || *s.Completions >= 1) &&
				(s.MaxFailedItems == nil || *s.MaxFailedItems >= 0) &&
				s.ActiveDeadline >= 0 &&
				(s.TTLAfterFinished == nil || *s.TTLAfterFinished >= 0) &&
				s.RetryBackoff > 0 &&
				s.RetryBackoffMax >= s.RetryBackoff
		}
		check := func(s jobstate.Spec) {
			err := s.Validate()
			if valid(s) {
				require.NoError(t, err, "%+v", s)
				b, err := json.Marshal(s)
				require.NoError(t, err)
				var back jobstate.Spec
				require.NoError(t, json.Unmarshal(b, &back))
				require.Equal(t, s, back)
				return
			}
			require.ErrorIs(t, err, jobstate.ErrInvalidSpec, "%+v", s)
			field := false
			for _, name := range []string{"batch-size", "lease", "max-attempts", "backoff-limit", "parallelism", "completions",
				"max-failed-items", "active-deadline", "ttl-after-finished", "retry-backoff", "retry-backoff-max"} {
				field = field || strings.Contains(err.Error(), ": "+name+" (")
			}
			require.True(t, field, "the error names a field: %v", err)
		}
		check(s)
		d := s.WithDefaults()
		check(d)
		require.Equal(t, d, d.WithDefaults())
		if d.Kind() == jobstate.KindIndexed {
			require.NotNil(t, s.Completions)
		}
		// Backoff never panics, and stays within [0, RetryBackoffMax).
		if valid(d) {
			for _, a := range []int{-1, 0, 1, 2, 10, 30, 45, 50, 64, 1 << 20} {
				b := d.Backoff(a, 0.5)
				require.GreaterOrEqual(t, b, time.Duration(0))
				require.LessOrEqual(t, b, d.RetryBackoffMax.D())
			}
		}
	})
}
