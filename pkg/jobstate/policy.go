package jobstate

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// FailureAction is what a failure policy rule does with a failed item, as
// Kubernetes' podFailurePolicy does with a failed Pod.
type FailureAction string

// The failure actions.
const (
	// ActionFailJob: the item is dead and the Job fails at once
	// (reason PodFailurePolicy).
	ActionFailJob FailureAction = "FailJob"
	// ActionFailIndex: the item is dead at once, whatever attempts it had
	// left.
	ActionFailIndex FailureAction = "FailIndex"
	// ActionIgnore: the item is retried without using an attempt.
	ActionIgnore FailureAction = "Ignore"
	// ActionCount: the failure uses an attempt (what happens without rules).
	ActionCount FailureAction = "Count"
)

// ExitCodes matches an item command's exit status: In the values, or
// NotIn them.
type ExitCodes struct {
	Operator string `json:"operator"` // In or NotIn
	Values   []int  `json:"values"`
}

// FailureRule is one rule of a failure policy. It matches a failure by the
// item command's exit code, or by how it was stopped: by --timeout, or by a
// graceful shutdown of its worker (SIGTERM), as Kubernetes' DisruptionTarget.
type FailureRule struct {
	Action      FailureAction `json:"action"`
	OnExitCodes *ExitCodes    `json:"onExitCodes,omitempty"`
	OnTimeout   bool          `json:"onTimeout,omitempty"`
	OnShutdown  bool          `json:"onShutdown,omitempty"`
}

// ItemFailure is how one run of an item failed, as the worker saw it.
type ItemFailure struct {
	// ExitCode is the command's exit status; -1 when it did not exit by
	// itself (killed), or for a Go handler's error.
	ExitCode int
	TimedOut bool // stopped by --timeout
	Shutdown bool // stopped because its worker was shutting down
}

// FailureAction returns the action of the first rule that matches f, as
// Kubernetes evaluates podFailurePolicy rules in order. Without a match, an
// item stopped by a shutdown goes back without using an attempt (Ignore)
// and any other failure counts (Count).
func (s Spec) FailureAction(f ItemFailure) (FailureAction, string) {
	for _, r := range s.FailurePolicy {
		if r.matches(f) {
			return r.Action, r.String()
		}
	}
	if f.Shutdown {
		return ActionIgnore, ""
	}
	return ActionCount, ""
}

func (r FailureRule) matches(f ItemFailure) bool {
	switch {
	case r.OnTimeout:
		return f.TimedOut
	case r.OnShutdown:
		return f.Shutdown
	case r.OnExitCodes != nil:
		if f.TimedOut || f.Shutdown || f.ExitCode < 0 {
			return false
		}
		in := slices.Contains(r.OnExitCodes.Values, f.ExitCode)
		if r.OnExitCodes.Operator == "NotIn" {
			return !in
		}
		return in
	}
	return false
}

func (r FailureRule) validate() error {
	switch r.Action {
	case ActionFailJob, ActionFailIndex, ActionIgnore, ActionCount:
	default:
		return fmt.Errorf("has action %q; use FailJob, FailIndex, Ignore or Count", r.Action)
	}
	n := 0
	if r.OnTimeout {
		n++
	}
	if r.OnShutdown {
		n++
	}
	if r.OnExitCodes != nil {
		n++
		switch r.OnExitCodes.Operator {
		case "In", "NotIn":
		default:
			return fmt.Errorf("has operator %q; use In or NotIn", r.OnExitCodes.Operator)
		}
		if len(r.OnExitCodes.Values) == 0 {
			return fmt.Errorf("lists no exit code")
		}
		for _, v := range r.OnExitCodes.Values {
			if v < 0 || v > 255 {
				return fmt.Errorf("has exit code %d; exit codes are 0 to 255", v)
			}
			if v == 0 && r.OnExitCodes.Operator == "In" {
				return fmt.Errorf("matches exit code 0, which is a success; remove it")
			}
		}
	}
	if n != 1 {
		return fmt.Errorf("must match exactly one of exit=CODES, exit!=CODES, timeout or shutdown")
	}
	return nil
}

// String writes a rule in the form ParseFailureRule reads.
func (r FailureRule) String() string {
	var on string
	switch {
	case r.OnTimeout:
		on = "timeout"
	case r.OnShutdown:
		on = "shutdown"
	case r.OnExitCodes != nil:
		op := "="
		if r.OnExitCodes.Operator == "NotIn" {
			op = "!="
		}
		vs := make([]string, len(r.OnExitCodes.Values))
		for i, v := range r.OnExitCodes.Values {
			vs[i] = strconv.Itoa(v)
		}
		on = "exit" + op + strings.Join(vs, ",")
	}
	return string(r.Action) + ":" + on
}

// ParseFailureRule reads a rule written ACTION:CONDITION, such as
// "FailJob:exit=42", "Ignore:exit=75,143", "FailIndex:exit!=0,1",
// "Count:timeout" or "Ignore:shutdown". The error wraps ErrInvalidSpec.
func ParseFailureRule(s string) (FailureRule, error) {
	bad := func(format string, a ...any) (FailureRule, error) {
		return FailureRule{}, fmt.Errorf("%w: failure-policy %q: %s; write ACTION:CONDITION such as FailJob:exit=42, Ignore:exit!=1,2, Count:timeout or Ignore:shutdown",
			ErrInvalidSpec, s, fmt.Sprintf(format, a...))
	}
	action, on, ok := strings.Cut(s, ":")
	if !ok {
		return bad("no condition")
	}
	r := FailureRule{Action: FailureAction(action)}
	for _, a := range []FailureAction{ActionFailJob, ActionFailIndex, ActionIgnore, ActionCount} {
		if strings.EqualFold(action, string(a)) {
			r.Action = a
		}
	}
	switch {
	case on == "timeout":
		r.OnTimeout = true
	case on == "shutdown":
		r.OnShutdown = true
	case strings.HasPrefix(on, "exit!="), strings.HasPrefix(on, "exit="):
		op, list := "In", strings.TrimPrefix(on, "exit=")
		if strings.HasPrefix(on, "exit!=") {
			op, list = "NotIn", strings.TrimPrefix(on, "exit!=")
		}
		r.OnExitCodes = &ExitCodes{Operator: op}
		for _, v := range strings.Split(list, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return bad("exit code %q is not a number", v)
			}
			r.OnExitCodes.Values = append(r.OnExitCodes.Values, n)
		}
	default:
		return bad("unknown condition %q", on)
	}
	if err := r.validate(); err != nil {
		return bad("%v", err)
	}
	return r, nil
}

// SuccessRule is one rule of a success policy, as in Kubernetes: it is met
// when the indexes in SucceededIndexes all succeeded (or, with
// SucceededCount, that many of them; or that many of all indexes when
// SucceededIndexes is empty).
type SuccessRule struct {
	SucceededIndexes string `json:"succeededIndexes,omitempty"`
	SucceededCount   *int   `json:"succeededCount,omitempty"`
}

func (r SuccessRule) validate(s Spec) error {
	if r.SucceededIndexes == "" && r.SucceededCount == nil {
		return fmt.Errorf("sets neither indexes nor count")
	}
	idx, err := ParseIntervals(r.SucceededIndexes)
	if err != nil {
		return err
	}
	k := 0
	if s.Completions != nil {
		k = *s.Completions
	}
	for _, iv := range idx {
		if iv[1] >= k {
			return fmt.Errorf("names index %d, beyond the last (%d)", iv[1], k-1)
		}
	}
	if c := r.SucceededCount; c != nil {
		limit := k
		if r.SucceededIndexes != "" {
			limit = intervalsLen(idx)
		}
		if *c < 1 || *c > limit {
			return fmt.Errorf("has count %d; it must be between 1 and %d", *c, limit)
		}
	}
	return nil
}

// String writes a rule in the form ParseSuccessRule reads.
func (r SuccessRule) String() string {
	var parts []string
	if r.SucceededIndexes != "" {
		parts = append(parts, "indexes="+r.SucceededIndexes)
	}
	if r.SucceededCount != nil {
		parts = append(parts, "count="+strconv.Itoa(*r.SucceededCount))
	}
	return strings.Join(parts, ";")
}

// ParseSuccessRule reads "indexes=0-3,5", "count=2" or
// "indexes=0-9;count=5". The error wraps ErrInvalidSpec.
func ParseSuccessRule(s string) (SuccessRule, error) {
	var r SuccessRule
	for _, part := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(part, "=")
		switch {
		case ok && k == "indexes":
			if _, err := ParseIntervals(v); err != nil {
				return r, fmt.Errorf("%w: success-policy %q: %v; write indexes=0-3,5 and/or count=N, joined by ;", ErrInvalidSpec, s, err)
			}
			r.SucceededIndexes = v
		case ok && k == "count":
			n, err := strconv.Atoi(v)
			if err != nil {
				return r, fmt.Errorf("%w: success-policy %q: count %q is not a number", ErrInvalidSpec, s, v)
			}
			r.SucceededCount = Ptr(n)
		default:
			return r, fmt.Errorf("%w: success-policy %q: unknown part %q; write indexes=0-3,5 and/or count=N, joined by ;", ErrInvalidSpec, s, part)
		}
	}
	return r, nil
}

// SuccessPolicyMet reports whether a rule of the success policy is met by
// the completed indexes (an interval string), and which, in order.
func (s Spec) SuccessPolicyMet(completed string) (string, bool) {
	return s.SuccessPolicyMetCount(completed, 0)
}

// SuccessPolicyMetCount is SuccessPolicyMet for a reader that did not read
// every completed index: completed need only hold those within the rules'
// indexes (SuccessPolicyIndexes), and count is how many indexes completed
// in all, which a rule with a count and no indexes reads (0: counted from
// completed).
func (s Spec) SuccessPolicyMetCount(completed string, count int64) (string, bool) {
	if len(s.SuccessPolicy) == 0 {
		return "", false
	}
	done, err := ParseIntervals(completed)
	if err != nil {
		return "", false
	}
	for _, r := range s.SuccessPolicy {
		want, _ := ParseIntervals(r.SucceededIndexes)
		var got int
		if r.SucceededIndexes == "" {
			got = max(intervalsLen(done), int(count))
		} else {
			got = intervalsLen(intersect(want, done))
		}
		need := intervalsLen(want)
		if r.SucceededCount != nil {
			need = *r.SucceededCount
		}
		if got >= need {
			return r.String(), true
		}
	}
	return "", false
}

// SuccessPolicyIndexes returns the indexes the success policy's rules
// name, merged, as an interval string: the only completed indexes a rule
// with indexes reads. Empty when no rule names indexes.
func (s Spec) SuccessPolicyIndexes() string {
	var all [][2]int
	for _, r := range s.SuccessPolicy {
		ivs, _ := ParseIntervals(r.SucceededIndexes)
		all = append(all, ivs...)
	}
	if len(all) == 0 {
		return ""
	}
	slices.SortFunc(all, func(a, b [2]int) int { return a[0] - b[0] })
	merged := all[:1]
	for _, iv := range all[1:] {
		last := &merged[len(merged)-1]
		if iv[0] <= last[1]+1 {
			last[1] = max(last[1], iv[1])
			continue
		}
		merged = append(merged, iv)
	}
	return FormatIntervals(merged)
}

// FormatIntervals writes sorted, merged [lo, hi] pairs as an interval
// string such as "0-3,5".
func FormatIntervals(ivs [][2]int) string {
	var b strings.Builder
	for i, iv := range ivs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(iv[0]))
		if iv[1] != iv[0] {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(iv[1]))
		}
	}
	return b.String()
}

// ParseIntervals reads an interval string such as "0-3,5" into sorted,
// merged [lo, hi] pairs. The empty string is no interval.
func ParseIntervals(s string) ([][2]int, error) {
	if s == "" {
		return nil, nil
	}
	var out [][2]int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("%q is not an index or a range such as 0-3", part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("%q is not a range such as 0-3", part)
			}
		}
		out = append(out, [2]int{a, b})
	}
	slices.SortFunc(out, func(x, y [2]int) int { return x[0] - y[0] })
	merged := out[:1]
	for _, iv := range out[1:] {
		last := &merged[len(merged)-1]
		if iv[0] <= last[1]+1 {
			last[1] = max(last[1], iv[1])
			continue
		}
		merged = append(merged, iv)
	}
	return merged, nil
}

func intervalsLen(ivs [][2]int) int {
	n := 0
	for _, iv := range ivs {
		n += iv[1] - iv[0] + 1
	}
	return n
}

// intersect returns the overlap of two sorted, merged interval lists.
func intersect(a, b [][2]int) [][2]int {
	var out [][2]int
	for i, j := 0, 0; i < len(a) && j < len(b); {
		lo, hi := max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
		if lo <= hi {
			out = append(out, [2]int{lo, hi})
		}
		if a[i][1] < b[j][1] {
			i++
		} else {
			j++
		}
	}
	return out
}
