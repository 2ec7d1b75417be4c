package jobstate_test

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/pkg/jobstate"
)

func TestWithDefaults(t *testing.T) {
	t.Parallel()

	t.Run("ZeroSpecTakesEveryDefault", func(t *testing.T) {
		t.Parallel()
		s := jobstate.Spec{}.WithDefaults()
		require.Equal(t, jobstate.Spec{
			BatchSize:       jobstate.DefaultBatchSize,
			Lease:           jobstate.Duration(jobstate.DefaultLease),
			MaxAttempts:     jobstate.DefaultMaxAttempts,
			BackoffLimit:    jobstate.Ptr(jobstate.DefaultBackoffLimit),
			Parallelism:     jobstate.DefaultParallelism,
			RetryBackoff:    jobstate.Duration(jobstate.DefaultRetryBackoff),
			RetryBackoffMax: jobstate.Duration(jobstate.DefaultRetryBackoffMax),
		}, s)
		require.NoError(t, s.Validate(), "the defaults are valid")
		require.Equal(t, jobstate.KindWorkQueue, s.Kind())
	})

	t.Run("SetFieldsAreKept", func(t *testing.T) {
		t.Parallel()
		in := jobstate.Spec{
			BatchSize:        7,
			Lease:            jobstate.Duration(time.Minute),
			MaxAttempts:      9,
			BackoffLimit:     jobstate.Ptr(0),
			Parallelism:      4,
			Completions:      jobstate.Ptr(12),
			CompletionMode:   jobstate.CompletionIndexed,
			MaxFailedItems:   jobstate.Ptr(0),
			ActiveDeadline:   jobstate.Duration(time.Hour),
			TTLAfterFinished: jobstate.Ptr(jobstate.Duration(0)),
			RetryBackoff:     jobstate.Duration(2 * time.Second),
			RetryBackoffMax:  jobstate.Duration(3 * time.Second),
		}
		require.Equal(t, in, in.WithDefaults())
		require.Equal(t, 0, *in.WithDefaults().BackoffLimit, "an explicit backoff limit of 0 is not replaced by the default")
		require.Equal(t, jobstate.KindIndexed, in.Kind())
	})

	t.Run("DoesNotAliasTheCallersPointers", func(t *testing.T) {
		t.Parallel()
		s := jobstate.Spec{}.WithDefaults()
		*s.BackoffLimit = 99
		require.Equal(t, jobstate.DefaultBackoffLimit, *jobstate.Spec{}.WithDefaults().BackoffLimit)
	})

	t.Run("IsIdempotent", func(t *testing.T) {
		t.Parallel()
		s := jobstate.Spec{BatchSize: 3}.WithDefaults()
		require.Equal(t, s, s.WithDefaults())
	})
}

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := func(f func(*jobstate.Spec)) jobstate.Spec {
		s := jobstate.Spec{}.WithDefaults()
		f(&s)
		return s
	}
	valid := []struct {
		name string
		spec jobstate.Spec
	}{
		{"BatchSizeOne", ok(func(s *jobstate.Spec) { s.BatchSize = 1 })},
		{"BatchSizeAtMax", ok(func(s *jobstate.Spec) { s.BatchSize = jobstate.MaxBatchSize })},
		{"LeaseAtMin", ok(func(s *jobstate.Spec) { s.Lease = jobstate.Duration(jobstate.MinLease) })},
		{"BackoffLimitZero", ok(func(s *jobstate.Spec) { s.BackoffLimit = jobstate.Ptr(0) })},
		{"CompletionsOne", ok(func(s *jobstate.Spec) { s.Completions = jobstate.Ptr(1) })},
		{"MaxFailedItemsZero", ok(func(s *jobstate.Spec) { s.MaxFailedItems = jobstate.Ptr(0) })},
		{"TTLZero", ok(func(s *jobstate.Spec) { s.TTLAfterFinished = jobstate.Ptr(jobstate.Duration(0)) })},
		{"RetryBackoffMaxEqualsBackoff", ok(func(s *jobstate.Spec) { s.RetryBackoffMax = s.RetryBackoff })},
		{"ParallelismZeroAfterDefaults", ok(func(s *jobstate.Spec) { s.Parallelism = 0 })},
	}
	for _, tc := range valid {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.NoError(t, tc.spec.Validate())
		})
	}

	invalid := []struct {
		name  string
		spec  jobstate.Spec
		field string // the flag-style field name the error must name
		value string // the bad value the error must show
	}{
		{"ZeroSpecWithoutDefaults", jobstate.Spec{}, "batch-size", "(0)"},
		{"BatchSizeNegative", ok(func(s *jobstate.Spec) { s.BatchSize = -1 }), "batch-size", "(-1)"},
		{"BatchSizeOverMax", ok(func(s *jobstate.Spec) { s.BatchSize = jobstate.MaxBatchSize + 1 }), "batch-size", "(5001)"},
		{"LeaseBelowMin", ok(func(s *jobstate.Spec) { s.Lease = jobstate.Duration(jobstate.MinLease - time.Millisecond) }), "lease", "(99ms)"},
		{"MaxAttemptsNegative", ok(func(s *jobstate.Spec) { s.MaxAttempts = -2 }), "max-attempts", "(-2)"},
		{"BackoffLimitNegative", ok(func(s *jobstate.Spec) { s.BackoffLimit = jobstate.Ptr(-1) }), "backoff-limit", "(-1)"},
		{"ParallelismNegative", ok(func(s *jobstate.Spec) { s.Parallelism = -3 }), "parallelism", "(-3)"},
		{"CompletionsZero", ok(func(s *jobstate.Spec) { s.Completions = jobstate.Ptr(0) }), "completions", "(0)"},
		{"MaxFailedItemsNegative", ok(func(s *jobstate.Spec) { s.MaxFailedItems = jobstate.Ptr(-1) }), "max-failed-items", "(-1)"},
		{"ActiveDeadlineNegative", ok(func(s *jobstate.Spec) { s.ActiveDeadline = jobstate.Duration(-time.Second) }), "active-deadline", "(-1s)"},
		{"TTLNegative", ok(func(s *jobstate.Spec) { s.TTLAfterFinished = jobstate.Ptr(jobstate.Duration(-time.Minute)) }), "ttl-after-finished", "(-1m0s)"},
		{"RetryBackoffNegative", ok(func(s *jobstate.Spec) { s.RetryBackoff = jobstate.Duration(-time.Second) }), "retry-backoff", "(-1s)"},
		{"RetryBackoffMaxBelowBackoff", ok(func(s *jobstate.Spec) { s.RetryBackoffMax = jobstate.Duration(500 * time.Millisecond) }), "retry-backoff-max", "(500ms)"},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.spec.Validate()
			require.ErrorIs(t, err, jobstate.ErrInvalidSpec)
			msg := strings.TrimPrefix(err.Error(), jobstate.ErrInvalidSpec.Error()+": ")
			require.True(t, strings.HasPrefix(msg, tc.field+" "), "the error %q starts with the field %q", msg, tc.field)
			require.Contains(t, msg, tc.value, "the error shows the bad value")
		})
	}

	t.Run("RetryBackoffMaxErrorNamesBothFields", func(t *testing.T) {
		t.Parallel()
		s := ok(func(s *jobstate.Spec) {
			s.RetryBackoff = jobstate.Duration(time.Minute)
			s.RetryBackoffMax = jobstate.Duration(time.Second)
		})
		err := s.Validate()
		require.ErrorContains(t, err, "retry-backoff-max (1s)")
		require.ErrorContains(t, err, "retry-backoff (1m0s)")
	})

	t.Run("LeaseErrorShowsTheMinimum", func(t *testing.T) {
		t.Parallel()
		s := ok(func(s *jobstate.Spec) { s.Lease = jobstate.Duration(time.Millisecond) })
		require.ErrorContains(t, s.Validate(), "at least 100ms")
	})

	t.Run("CompletionsErrorSaysHowToGetAWorkQueue", func(t *testing.T) {
		t.Parallel()
		s := ok(func(s *jobstate.Spec) { s.Completions = jobstate.Ptr(-1) })
		require.ErrorContains(t, s.Validate(), "leave it unset for a work-queue Job")
	})
}

func TestValidateName(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		in    string
		valid bool
		hint  string // part of the error
	}{
		{"Simple", "thumbs", true, ""},
		{"OneLetter", "a", true, ""},
		{"OneDigit", "7", true, ""},
		{"LeadingDigit", "0day", true, ""},
		{"InnerHyphens", "a--b-c", true, ""},
		{"Max63", strings.Repeat("a", 63), true, ""},
		{"Empty", "", false, "empty"},
		{"Len64", strings.Repeat("a", 64), false, "64 characters"},
		{"Uppercase", "Thumbs", false, "not a DNS label"},
		{"Underscore", "my_job", false, "not a DNS label"},
		{"LeadingHyphen", "-job", false, "not a DNS label"},
		{"TrailingHyphen", "job-", false, "not a DNS label"},
		{"OnlyHyphen", "-", false, "not a DNS label"},
		{"Dot", "a.b", false, "not a DNS label"},
		{"Space", "a b", false, "not a DNS label"},
		{"Colon", "a:b", false, "not a DNS label"},
		{"Braces", "a}b", false, "not a DNS label"},
		{"Unicode", "jöb", false, "not a DNS label"},
		{"TrailingNewline", "job\n", false, "not a DNS label"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := jobstate.ValidateName(tc.in)
			if tc.valid {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, jobstate.ErrInvalidSpec)
			require.ErrorContains(t, err, tc.hint)
			if tc.in != "" {
				require.ErrorContains(t, err, "job name", "the error says what it is about")
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	s := jobstate.Spec{RetryBackoff: jobstate.Duration(time.Second), RetryBackoffMax: jobstate.Duration(10 * time.Second)}

	t.Run("DoublesPerAttempt", func(t *testing.T) {
		t.Parallel()
		// With jitter 0 the delay is half the nominal one.
		for attempt, want := range map[int]time.Duration{
			1: 500 * time.Millisecond,
			2: time.Second,
			3: 2 * time.Second,
			4: 4 * time.Second,
		} {
			require.Equal(t, want, s.Backoff(attempt, 0), "attempt %d", attempt)
		}
	})

	t.Run("IsCapped", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, 5*time.Second, s.Backoff(5, 0), "16s capped to 10s")
		require.Equal(t, 5*time.Second, s.Backoff(1000, 0), "no overflow on huge attempts")
		odd := jobstate.Spec{RetryBackoff: jobstate.Duration(3 * time.Second), RetryBackoffMax: jobstate.Duration(5 * time.Second)}
		require.Equal(t, 2500*time.Millisecond, odd.Backoff(2, 0), "6s is capped to 5s, not a power of two of the base")
	})

	t.Run("HugeCapDoesNotOverflow", func(t *testing.T) {
		t.Parallel()
		huge := jobstate.Spec{RetryBackoff: jobstate.Duration(time.Millisecond), RetryBackoffMax: jobstate.Duration(math.MaxInt64)}
		require.NoError(t, huge.WithDefaults().Validate(), "a cap of ~292 years is accepted, so Backoff must cope with it")
		prev := time.Duration(0)
		for attempt := 1; attempt <= 200; attempt++ {
			d := huge.Backoff(attempt, 0)
			require.GreaterOrEqual(t, d, prev, "attempt %d: the delay never shrinks", attempt)
			require.LessOrEqual(t, d, time.Duration(math.MaxInt64/2+1), "attempt %d", attempt)
			prev = d
		}
		require.Equal(t, time.Duration(math.MaxInt64/2), huge.Backoff(200, 0), "long past the cap, the delay is half of it")
	})

	t.Run("FirstRetryBelowOneIsTheBase", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, s.Backoff(1, 0.5), s.Backoff(0, 0.5))
		require.Equal(t, s.Backoff(1, 0.5), s.Backoff(-3, 0.5))
	})

	t.Run("JitterSpreadsWithinHalfToFull", func(t *testing.T) {
		t.Parallel()
		rng := rand.New(rand.NewPCG(1, 2))
		for attempt := 1; attempt <= 8; attempt++ {
			nominal := min(time.Second<<(attempt-1), 10*time.Second)
			require.Equal(t, nominal/2, s.Backoff(attempt, 0))
			for range 200 {
				d := s.Backoff(attempt, rng.Float64())
				require.GreaterOrEqual(t, d, nominal/2)
				require.Less(t, d, nominal)
			}
			require.Less(t, s.Backoff(attempt, 0.9999999), nominal)
			require.Greater(t, s.Backoff(attempt, 0.99), s.Backoff(attempt, 0.01), "jitter moves the delay")
		}
	})

	t.Run("DefaultsStartAtHalfASecond", func(t *testing.T) {
		t.Parallel()
		d := jobstate.Spec{}.WithDefaults()
		require.Equal(t, 500*time.Millisecond, d.Backoff(1, 0))
		require.Equal(t, 150*time.Second, d.Backoff(30, 0), "capped at half of the 5m default")
	})
}

func TestDuration(t *testing.T) {
	t.Parallel()

	t.Run("SpecJSONRoundTrip", func(t *testing.T) {
		t.Parallel()
		in := jobstate.Spec{Completions: jobstate.Ptr(3), TTLAfterFinished: jobstate.Ptr(jobstate.Duration(90 * time.Second)),
			ActiveDeadline: jobstate.Duration(1500 * time.Millisecond)}.WithDefaults()
		b, err := json.Marshal(in)
		require.NoError(t, err)
		require.Contains(t, string(b), `"lease":"30s"`)
		require.Contains(t, string(b), `"ttlAfterFinished":"1m30s"`)
		require.Contains(t, string(b), `"activeDeadline":"1.5s"`)
		require.Contains(t, string(b), `"maxFailedItems":null`)
		var out jobstate.Spec
		require.NoError(t, json.Unmarshal(b, &out))
		require.Equal(t, in, out)
	})

	t.Run("ReadsGoDurations", func(t *testing.T) {
		t.Parallel()
		var v struct{ D jobstate.Duration }
		require.NoError(t, json.Unmarshal([]byte(`{"D":"1m30s"}`), &v))
		require.Equal(t, 90*time.Second, v.D.D())
		require.NoError(t, json.Unmarshal([]byte(`{"D":"-250ms"}`), &v))
		require.Equal(t, -250*time.Millisecond, v.D.D())
		require.NoError(t, json.Unmarshal([]byte(`{"D":"0s"}`), &v))
		require.Zero(t, v.D)
	})

	t.Run("BadDurationSaysWhatToWrite", func(t *testing.T) {
		t.Parallel()
		var v struct{ D jobstate.Duration }
		err := json.Unmarshal([]byte(`{"D":"30"}`), &v)
		require.ErrorContains(t, err, `duration "30"`)
		require.ErrorContains(t, err, "such as 30s or 5m")
		require.Error(t, json.Unmarshal([]byte(`{"D":30}`), &v), "a bare number is not a duration")
	})

	t.Run("StringAndTextAgree", func(t *testing.T) {
		t.Parallel()
		for _, d := range []time.Duration{0, time.Nanosecond, 100 * time.Millisecond, 36 * time.Hour, -time.Minute} {
			b, err := jobstate.Duration(d).MarshalText()
			require.NoError(t, err)
			require.Equal(t, d.String(), string(b))
			require.Equal(t, d.String(), jobstate.Duration(d).String())
			var back jobstate.Duration
			require.NoError(t, back.UnmarshalText(b))
			require.Equal(t, d, back.D())
		}
	})
}
