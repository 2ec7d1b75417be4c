package jobstate

import (
	"fmt"
	"math"
	"time"
)

// MaxETA caps an estimate: beyond it, a rate measured over one minute says
// nothing useful about when a Job ends.
const MaxETA = 100 * 365 * 24 * time.Hour

// EstimateETA estimates how long until every item of s is settled (succeeded
// or dead), from the recent rate s.Throughput (items succeeded per second
// over the last minute) and the items left (total − succeeded − dead).
//
// It returns (0, true) once the Job is finished or nothing is left, and
// (0, false) when no estimate can be made: a work-queue Job that is not yet
// sealed (more items may come; an Indexed Job counts as sealed), a suspended
// or failing Job (its items are not being worked on), or a rate that is zero
// or not a number. Estimates over MaxETA are capped at MaxETA. It reads no
// clock.
func EstimateETA(s Status) (time.Duration, bool) {
	switch {
	case s.Phase.Finished():
		return 0, true
	case s.Phase == PhaseSucceeding:
		return 0, true
	case s.Phase == PhaseFailing, s.Phase == PhaseSuspended, s.Suspended:
		return 0, false
	case !s.Sealed && s.Kind == KindWorkQueue && !s.Spec.Counted():
		return 0, false
	}
	left := s.Items.Total - s.Items.Succeeded - s.Items.Dead
	if left <= 0 {
		return 0, true
	}
	rate := s.Throughput
	if !(rate > 0) || math.IsInf(rate, 1) { // also false for NaN
		return 0, false
	}
	secs := float64(left) / rate
	if secs >= MaxETA.Seconds() {
		return MaxETA, true
	}
	return time.Duration(math.Ceil(secs * float64(time.Second))), true
}

// FormatETA renders an estimate from EstimateETA for a person: "unknown"
// when ok is false, "done" for zero, then rounded up to the unit shown:
// "45s", "1m20s", "3h05m" (under two days), "4d03h", and ">999d" beyond.
func FormatETA(d time.Duration, ok bool) string {
	const day = 24 * time.Hour
	switch {
	case !ok:
		return "unknown"
	case d <= 0:
		return "done"
	case d > 999*day:
		return ">999d"
	}
	secs := int64((d + time.Second - 1) / time.Second)
	switch {
	case secs < 60:
		return fmt.Sprintf("%ds", secs)
	case secs < 3600:
		return fmt.Sprintf("%dm%02ds", secs/60, secs%60)
	}
	mins := (secs + 59) / 60
	if mins < 48*60 {
		return fmt.Sprintf("%dh%02dm", mins/60, mins%60)
	}
	hours := (mins + 59) / 60
	return fmt.Sprintf("%dd%02dh", hours/24, hours%24)
}
