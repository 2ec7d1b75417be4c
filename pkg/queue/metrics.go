package queue

import "github.com/prometheus/client_golang/prometheus"

// Item outcomes, the values of the "outcome" label.
const (
	outcomeSucceeded = "succeeded"
	outcomeFailed    = "failed"
	outcomeReleased  = "released"
	outcomeRefused   = "refused"
)

// Metrics are a worker's Prometheus metrics. Labels are bounded: the Job
// name and fixed enums. A nil *Metrics records nothing. Safe for concurrent
// use.
type Metrics struct {
	items        *prometheus.CounterVec
	itemDuration *prometheus.HistogramVec
	leaseRTT     *prometheus.HistogramVec
	batchSize    *prometheus.HistogramVec
	takeovers    *prometheus.CounterVec
	staleAcks    *prometheus.CounterVec
	redisErrors  *prometheus.CounterVec
}

// NewMetrics creates the worker metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		items: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "workq_worker_items_total",
			Help: "Items this worker processed, by outcome: succeeded, failed, released (handed back) or refused (stale ack).",
		}, []string{"job", "outcome"}),
		itemDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "workq_worker_item_duration_seconds",
			Help:    "Time to process one item (one batch with --batch-exec).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"job"}),
		leaseRTT: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "workq_worker_lease_roundtrip_seconds",
			Help:    "Round trip of one lease call to Redis.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 3, 10),
		}, []string{"job"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "workq_worker_lease_batch_items",
			Help:    "Items returned by one lease call.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000},
		}, []string{"job"}),
		takeovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "workq_worker_leases_lost_total",
			Help: "Leases this worker held that expired and were taken over by a peer.",
		}, []string{"job"}),
		staleAcks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "workq_worker_stale_acks_total",
			Help: "Acks and nacks refused because the lease had been taken over.",
		}, []string{"job"}),
		redisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "workq_worker_redis_errors_total",
			Help: "Failed calls to Redis (each was retried).",
		}, []string{"job"}),
	}
	reg.MustRegister(m.items, m.itemDuration, m.leaseRTT, m.batchSize, m.takeovers, m.staleAcks, m.redisErrors)
	return m
}

// start creates every series of the Job at 0, so dashboards show 0 rather
// than "no data" for what has not happened yet.
func (m *Metrics) start(job string) {
	if m == nil {
		return
	}
	for _, o := range []string{outcomeSucceeded, outcomeFailed, outcomeReleased, outcomeRefused} {
		m.items.WithLabelValues(job, o).Add(0)
	}
	m.takeovers.WithLabelValues(job).Add(0)
	m.staleAcks.WithLabelValues(job).Add(0)
	m.redisErrors.WithLabelValues(job).Add(0)
}

func (m *Metrics) item(job, outcome string, n int) {
	if m != nil && n > 0 {
		m.items.WithLabelValues(job, outcome).Add(float64(n))
	}
}

func (m *Metrics) duration(job string, s float64) {
	if m != nil {
		m.itemDuration.WithLabelValues(job).Observe(s)
	}
}

func (m *Metrics) lease(job string, rtt float64, n int) {
	if m != nil {
		m.leaseRTT.WithLabelValues(job).Observe(rtt)
		if n > 0 {
			m.batchSize.WithLabelValues(job).Observe(float64(n))
		}
	}
}

func (m *Metrics) lost(job string, n int) {
	if m != nil && n > 0 {
		m.takeovers.WithLabelValues(job).Add(float64(n))
	}
}

func (m *Metrics) stale(job string, n int) {
	if m != nil && n > 0 {
		m.staleAcks.WithLabelValues(job).Add(float64(n))
	}
}

func (m *Metrics) redisError(job string) {
	if m != nil {
		m.redisErrors.WithLabelValues(job).Inc()
	}
}
