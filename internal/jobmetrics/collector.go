package jobmetrics

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/pkg/jobstate"
)

// Source is where the collector reads Jobs from: the store itself, or a
// poller that shares one read among every scrape and dashboard viewer.
type Source interface {
	// Jobs reads the counters of every Job; a Job that could not be read
	// carries its error.
	Jobs(ctx context.Context) ([]store.JobStatus, error)
}

// ScrapeTimeout bounds the Redis reads of one scrape. Prometheus's own
// default scrape timeout is 10s; a scrape that takes longer is lost anyway.
const ScrapeTimeout = 8 * time.Second

// The values of the "state" label of workq_job_items.
var itemStates = []string{"pending", "returned", "leased", "retrying", "dead", "succeeded"}

type collector struct {
	src Source
	log *slog.Logger

	up             *prometheus.Desc
	readErrors     *prometheus.Desc
	items          *prometheus.Desc
	itemsTotal     *prometheus.Desc
	failedAttempts *prometheus.Desc
	takeovers      *prometheus.Desc
	leases         *prometheus.Desc
	workers        *prometheus.Desc
	workerExits    *prometheus.Desc
	oldestPending  *prometheus.Desc
	throughput     *prometheus.Desc
	info           *prometheus.Desc
	startTime      *prometheus.Desc
	completionTime *prometheus.Desc
	scrapeDuration *prometheus.Desc
}

// NewCollector returns a collector that reads every Job from src at scrape
// time, in one call (counters only, pipelined). A Job whose read
// fails is left out of that scrape (and counted in
// workq_job_read_errors) without failing the others; when Redis cannot be
// listed at all, only workq_redis_up 0 is exported. log receives a warning
// per failed read; nil means slog.Default(). The collector is safe for
// concurrent use.
func NewCollector(src Source, log *slog.Logger) prometheus.Collector {
	if log == nil {
		log = slog.Default()
	}
	job := []string{"job"}
	return &collector{
		src: src,
		log: log,
		up: prometheus.NewDesc("workq_redis_up",
			"1 when the last scrape could read the list of Jobs from Redis, 0 when it could not.", nil, nil),
		readErrors: prometheus.NewDesc("workq_job_read_errors",
			"Jobs whose status could not be read in this scrape (they are missing from it).", nil, nil),
		scrapeDuration: prometheus.NewDesc("workq_job_scrape_duration_seconds",
			"Time this scrape spent reading Jobs from Redis.", nil, nil),
		items: prometheus.NewDesc("workq_job_items",
			"Items of a Job by state: pending, returned (handed back unstarted), leased, retrying, dead or succeeded.", []string{"job", "state"}, nil),
		itemsTotal: prometheus.NewDesc("workq_job_items_total",
			"Items a Job knows of: every item pushed so far, or the completions of an Indexed Job.", job, nil),
		failedAttempts: prometheus.NewDesc("workq_job_failed_attempts_total",
			"Failed runs of a Job's items: nacks and expired leases.", job, nil),
		takeovers: prometheus.NewDesc("workq_job_lease_takeovers_total",
			"Leases of a Job that expired and were reclaimed for other workers.", job, nil),
		leases: prometheus.NewDesc("workq_job_leases",
			"Open leases (batches) held by a Job's workers.", job, nil),
		workers: prometheus.NewDesc("workq_job_workers",
			"Workers of a Job: active (registered, not terminated) and ready (fresh heartbeat).", []string{"job", "state"}, nil),
		workerExits: prometheus.NewDesc("workq_job_worker_exits_total",
			"Workers of a Job that ended, by outcome: succeeded (exited 0) or failed (crashed, lost or exited non-zero).", []string{"job", "outcome"}, nil),
		oldestPending: prometheus.NewDesc("workq_job_oldest_pending_age_seconds",
			"How long the oldest pending item of a Job has waited; 0 when nothing is pending.", job, nil),
		throughput: prometheus.NewDesc("workq_job_throughput_items_per_second",
			"Items of a Job that succeeded per second, averaged over the last minute.", job, nil),
		info: prometheus.NewDesc("workq_job_info",
			"Always 1; its labels carry a Job's kind (WorkQueue, Indexed, NonIndexed) and phase.", []string{"job", "kind", "phase"}, nil),
		startTime: prometheus.NewDesc("workq_job_start_time_seconds",
			"When a Job's first lease was handed out, in Unix seconds; absent until then.", job, nil),
		completionTime: prometheus.NewDesc("workq_job_completion_time_seconds",
			"When a Job became Complete or Failed, in Unix seconds; absent until then.", job, nil),
	}
}

func (c *collector) descs() []*prometheus.Desc {
	return []*prometheus.Desc{c.up, c.readErrors, c.scrapeDuration, c.items, c.itemsTotal, c.failedAttempts,
		c.takeovers, c.leases, c.workers, c.workerExits, c.oldestPending, c.throughput, c.info,
		c.startTime, c.completionTime}
}

// Describe sends the descriptors of every metric the collector may export.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs() {
		ch <- d
	}
}

// Collect reads every Job from Redis and sends its metrics.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), ScrapeTimeout)
	defer cancel()
	defer func() {
		ch <- prometheus.MustNewConstMetric(c.scrapeDuration, prometheus.GaugeValue, time.Since(start).Seconds())
	}()

	jobs, err := c.src.Jobs(ctx)
	if err != nil {
		c.log.Warn("metrics scrape could not list jobs", "err", err)
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	var failed int
	for _, j := range jobs {
		switch {
		case errors.Is(j.Err, store.ErrNoJob):
			// Deleted or expired between the listing and the read.
			continue
		case j.Err != nil:
			failed++
			c.log.Warn("metrics scrape could not read a job", "job", j.Name, "err", j.Err)
			continue
		}
		c.collectJob(ch, j.Status)
	}
	ch <- prometheus.MustNewConstMetric(c.readErrors, prometheus.GaugeValue, float64(failed))
}

func (c *collector) collectJob(ch chan<- prometheus.Metric, st jobstate.Status) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{st.Name}, labels...)...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, append([]string{st.Name}, labels...)...)
	}
	it := st.Items
	byState := []int64{it.Pending, it.Returned, it.Leased, it.Retrying, it.Dead, it.Succeeded}
	for i, s := range itemStates {
		gauge(c.items, float64(byState[i]), s)
	}
	// Total only grows while a Job lives (pushes add to it, retries do
	// not), so it is a counter, as its _total name says.
	counter(c.itemsTotal, float64(it.Total))
	counter(c.failedAttempts, float64(it.FailedAttempts))
	counter(c.takeovers, float64(it.Takeovers))
	gauge(c.leases, float64(st.Leases))
	gauge(c.workers, float64(st.Active), "active")
	gauge(c.workers, float64(st.Ready), "ready")
	counter(c.workerExits, float64(st.Succeeded), store.OutcomeSucceeded)
	counter(c.workerExits, float64(st.Failed), store.OutcomeFailed)
	gauge(c.oldestPending, st.OldestPendingAge)
	gauge(c.throughput, st.Throughput)
	gauge(c.info, 1, string(st.Kind), string(st.Phase))
	if st.StartTime != nil {
		gauge(c.startTime, unixSeconds(*st.StartTime))
	}
	if st.CompletionTime != nil {
		gauge(c.completionTime, unixSeconds(*st.CompletionTime))
	}
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }
