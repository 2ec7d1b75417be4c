package controller

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/workq/workq/internal/store"
)

// Metrics are what a Loop reports of its sweeps. A nil *Metrics records
// nothing.
type Metrics struct {
	sweeps   prometheus.Counter
	duration prometheus.Histogram
}

// NewMetrics registers the Loop's metrics with reg, and, when cache is not
// nil, how many Job snapshots it read in full and how many it reused after
// the cheap check.
func NewMetrics(reg prometheus.Registerer, cache *store.SnapshotCache) *Metrics {
	m := &Metrics{
		sweeps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "workq_controller_sweeps_total",
			Help: "Sweeps of the controller over every Job.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "workq_controller_sweep_duration_seconds",
			Help:    "Time one sweep of the controller over every Job took.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
	}
	reg.MustRegister(m.sweeps, m.duration)
	if cache != nil {
		for _, how := range []string{"read", "reused"} {
			reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name:        "workq_snapshots_total",
				Help:        "Job snapshots the controller and the dashboard needed: read in full (read), or kept and found unchanged by one HMGET and one LLEN (reused).",
				ConstLabels: prometheus.Labels{"how": how},
			}, func() float64 {
				s := cache.Stats()
				if how == "read" {
					return float64(s.Read)
				}
				return float64(s.Reused)
			}))
		}
	}
	return m
}

// Sweeps is the counter of sweeps done.
func (m *Metrics) Sweeps() prometheus.Counter { return m.sweeps }

func (m *Metrics) sweep(d time.Duration) {
	if m == nil {
		return
	}
	m.sweeps.Inc()
	m.duration.Observe(d.Seconds())
}
