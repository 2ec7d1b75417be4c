// Package jobmetrics exports the state of every workq Job as Prometheus
// metrics, read from Redis at scrape time: item counts by state, worker
// counts, throughput, the age of the oldest pending item and the Job's
// phase. Nothing is cached between scrapes, so the numbers are as fresh as
// Redis and the coordinator keeps no state of its own.
//
// Register the collector with a registry of your own and serve it:
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(jobmetrics.NewCollector(client, log))
//	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// docs/OBSERVABILITY.md lists every metric with its labels.
package jobmetrics
