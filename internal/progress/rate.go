package progress

import (
	"fmt"
	"time"
)

const (
	// rateWindow is how far back the shown rate looks.
	rateWindow = time.Minute
	// rateSettle is how long after the first count a rate is first shown.
	rateSettle = time.Second
	// sampleEvery spaces the samples kept, bounding them to a few hundred.
	sampleEvery = 250 * time.Millisecond
)

type sample struct {
	t time.Time
	n int64
}

// rateMeter measures items per second over the last rateWindow from the
// counts it observes. Its zero value is ready; it is not safe for concurrent
// use (Bar guards it).
type rateMeter struct {
	first   sample   // the first count observed, since the last reset
	samples []sample // oldest first; samples[0] is at most one step outside the window
}

func (m *rateMeter) observe(t time.Time, n int64) {
	if len(m.samples) == 0 || n < m.samples[len(m.samples)-1].n {
		// First count, or the count went back: start again.
		m.first = sample{t, n}
		m.samples = append(m.samples[:0], m.first)
		return
	}
	if t.Sub(m.samples[len(m.samples)-1].t) >= sampleEvery {
		m.samples = append(m.samples, sample{t, n})
	}
	cutoff := t.Add(-rateWindow)
	for len(m.samples) >= 2 && !m.samples[1].t.After(cutoff) {
		m.samples = m.samples[1:]
	}
}

// rate returns the rate at t for count n, and false until it means
// something: at least one item counted since the first observation, and
// rateSettle elapsed since it.
func (m *rateMeter) rate(t time.Time, n int64) (float64, bool) {
	if len(m.samples) == 0 || n-m.first.n < 1 || t.Sub(m.first.t) < rateSettle {
		return 0, false
	}
	from := m.samples[0]
	dt := t.Sub(from.t).Seconds()
	if dt <= 0 {
		return 0, false
	}
	return float64(n-from.n) / dt, true
}

// formatRate renders a rate in items per second with about three significant
// digits: "1234 items/s", "12.5 items/s", "0.25 items/s".
func formatRate(r float64) string {
	var num string
	switch {
	case r >= 99.95:
		num = fmt.Sprintf("%.0f", r)
	case r >= 9.995:
		num = fmt.Sprintf("%.1f", r)
	case r >= 0.005:
		num = fmt.Sprintf("%.2f", r)
	case r > 0:
		num = "<0.01"
	default:
		num = "0"
	}
	return num + " items/s"
}
