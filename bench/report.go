package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
)

// stat summarises the runs of one figure.
type stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func summarize(xs []float64) stat {
	if len(xs) == 0 {
		return stat{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{Median: med, Min: s[0], Max: s[len(s)-1]}
}

// sample is what one run of a config measured. Zero fields were not
// measured.
type sample struct {
	pushRate     float64 // items/s
	drainRate    float64 // items/s
	bytesPerItem float64
	rssBytes     float64
	pushCPU      float64 // Redis CPU seconds per 100k items
	drainCPU     float64
	clientCPU    float64 // the draining processes' CPU seconds per 100k items
	leaseItems   float64 // workq: mean items per lease
	leaseRTT     float64 // workq: mean lease round trip, ms
}

// row is one line of the table.
type row struct {
	Group       string `json:"group"`
	Name        string `json:"name"`
	Batch       int    `json:"batch,omitempty"`
	Workers     int    `json:"workers,omitempty"`
	Concurrency int    `json:"concurrency,omitempty"`
	Items       int    `json:"items"`
	Runs        int    `json:"runs"`
	// PushRate and DrainRate are items/s.
	PushRate  *stat `json:"pushItemsPerSec,omitempty"`
	DrainRate *stat `json:"drainItemsPerSec,omitempty"`
	// VsItemCeiling, VsBatchCeiling and VsFencedCeiling are the median
	// drain rate over the per-item, per-batch and fenced per-batch
	// ceilings' at the same batch size (N=1 for asynq, the default 1000
	// when no batch size is given).
	VsItemCeiling   float64 `json:"vsItemCeiling,omitempty"`
	VsBatchCeiling  float64 `json:"vsBatchCeiling,omitempty"`
	VsFencedCeiling float64 `json:"vsFencedCeiling,omitempty"`
	// VsAsynq is the median drain rate over asynq's best median.
	VsAsynq float64 `json:"vsAsynqBest,omitempty"`
	// BytesPerItem is Redis used_memory per queued item beyond its payload.
	BytesPerItem *float64 `json:"redisBytesPerItem,omitempty"`
	// RSSMiB is the draining (or pushing) process's peak RSS, median.
	RSSMiB *float64 `json:"peakRSSMiB,omitempty"`
	// PushCPU and DrainCPU are Redis CPU seconds per 100k items, median.
	PushCPU  *float64 `json:"redisCPUPushSecPer100k,omitempty"`
	DrainCPU *float64 `json:"redisCPUDrainSecPer100k,omitempty"`
	// ClientCPU is the draining processes' own CPU seconds per 100k items.
	ClientCPU *float64 `json:"clientCPUDrainSecPer100k,omitempty"`
	// Capacity is the items/s the drain's CPU cost allows on this machine
	// when nothing else runs: min(one Redis core / Redis CPU per item,
	// all cores / (Redis + client CPU per item)), from the medians. It
	// does not depend on other load, unlike the wall-clock rates.
	Capacity float64 `json:"cpuCapacityItemsPerSec,omitempty"`
	// LeaseItems and LeaseRTTms are the in-process workq workers' mean
	// items per lease call (a call may make several leases of at most B
	// items) and mean lease round trip, medians over the runs.
	LeaseItems *float64 `json:"meanItemsPerLease,omitempty"`
	LeaseRTTms *float64 `json:"meanLeaseRoundTripMs,omitempty"`
	NotRun     string   `json:"notRun,omitempty"`
	Note       string   `json:"note,omitempty"`
}

func ptr(f float64) *float64 { return &f }

// fill summarises samples into the row.
func (r *row) fill(ss []sample) {
	r.Runs = len(ss)
	col := func(get func(sample) float64) []float64 {
		var out []float64
		for _, s := range ss {
			if v := get(s); v != 0 {
				out = append(out, v)
			}
		}
		return out
	}
	if v := col(func(s sample) float64 { return s.pushRate }); len(v) > 0 {
		st := summarize(v)
		r.PushRate = &st
	}
	if v := col(func(s sample) float64 { return s.drainRate }); len(v) > 0 {
		st := summarize(v)
		r.DrainRate = &st
	}
	med := func(get func(sample) float64) *float64 {
		if v := col(get); len(v) > 0 {
			return ptr(summarize(v).Median)
		}
		return nil
	}
	r.BytesPerItem = med(func(s sample) float64 { return s.bytesPerItem })
	r.RSSMiB = med(func(s sample) float64 { return s.rssBytes / (1 << 20) })
	r.PushCPU = med(func(s sample) float64 { return s.pushCPU })
	r.DrainCPU = med(func(s sample) float64 { return s.drainCPU })
	r.ClientCPU = med(func(s sample) float64 { return s.clientCPU })
	r.LeaseItems = med(func(s sample) float64 { return s.leaseItems })
	r.LeaseRTTms = med(func(s sample) float64 { return s.leaseRTT })
	if r.DrainCPU != nil && r.ClientCPU != nil && *r.DrainCPU > 0 {
		r.Capacity = min(1e5 / *r.DrainCPU, float64(runtime.NumCPU())*1e5/(*r.DrainCPU+*r.ClientCPU))
	}
}

// check is one PASS/MISS line.
type check struct {
	Name   string `json:"name"`
	Result string `json:"result"` // PASS, MISS or NOT RUN
	Detail string `json:"detail"`
	Target bool   `json:"target"` // one of the targets, not an extra check
}

// report is everything one bench run found.
type report struct {
	Machine  machine        `json:"machine"`
	Command  string         `json:"command"`
	Rows     []row          `json:"rows"`
	Latency  *latencyResult `json:"latency,omitempty"`
	RSSFlat  []rssPoint     `json:"workerRSSByQueueSize,omitempty"`
	Volume   *volumeResult  `json:"scaleRow,omitempty"`
	Sched    []schedCase    `json:"scheduling,omitempty"`
	Scale    *scaleResult   `json:"scale,omitempty"`
	Checks   []check        `json:"checks"`
	Notes    []string       `json:"notes"`
	Errors   []string       `json:"errors,omitempty"`
	Duration float64        `json:"durationSeconds"`
}

// rssPoint is a worker process's peak RSS draining a queue of Items.
type rssPoint struct {
	Items  int     `json:"items"`
	RSSMiB float64 `json:"peakRSSMiB"`
}

func (rep *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

func rate(s *stat) string {
	if s == nil {
		return "-"
	}
	if s.Min == s.Max {
		return human(s.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", human(s.Median), human(s.Min), human(s.Max))
}

// human prints a rate with k/M suffixes.
func human(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func opt(f *float64, format string) string {
	if f == nil {
		return "-"
	}
	return fmt.Sprintf(format, *f)
}

func ratio(f float64, format string) string {
	if f == 0 {
		return "-"
	}
	return fmt.Sprintf(format, f)
}

func (rep *report) writeTable(w io.Writer) {
	m := rep.Machine
	fmt.Fprintf(w, "workq bench — %d CPUs, %s, %s, Redis %s, %s\n", m.CPUs, m.CPUModel, m.Go, m.Redis, m.StartedAt)
	fmt.Fprintf(w, "command: %s\n", rep.Command)
	fmt.Fprintf(w, "load average at start: %s, at end: %s (above %d, other work shared the machine)\n\n", m.LoadStart, m.LoadEnd, m.CPUs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "config\titems\truns\tpush items/s\tdrain items/s (median (min–max))\t×item ceil\t×batch ceil\t×fenced ceil\t×asynq best\tRedis B/item\tpeak RSS MiB\tRedis CPU s/100k: push\tdrain\tclient CPU s/100k\tCPU capacity items/s\titems/call\tlease RTT ms\t")
	group := ""
	var notRun []string
	for _, r := range rep.Rows {
		if r.Group != group {
			group = r.Group
			fmt.Fprintf(tw, "%s\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\n", "["+group+"]")
		}
		if r.NotRun != "" {
			fmt.Fprintf(tw, "%s\t\t\t\tnot run (below)\t\t\t\t\t\t\t\t\t\t\t\t\t\n", r.Name)
			notRun = append(notRun, fmt.Sprintf("%s %s: %s", r.Group, r.Name, r.NotRun))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Name, human(float64(r.Items)), r.Runs,
			rate(r.PushRate), rate(r.DrainRate), ratio(r.VsItemCeiling, "%.2f"), ratio(r.VsBatchCeiling, "%.2f"), ratio(r.VsFencedCeiling, "%.2f"), ratio(r.VsAsynq, "%.1f×"),
			opt(r.BytesPerItem, "%.1f"), opt(r.RSSMiB, "%.1f"), opt(r.PushCPU, "%.3f"), opt(r.DrainCPU, "%.3f"), opt(r.ClientCPU, "%.3f"), ratio(r.Capacity/1e3, "%.0fk"), opt(r.LeaseItems, "%.0f"), opt(r.LeaseRTTms, "%.2f"))
	}
	_ = tw.Flush()
	for _, n := range notRun {
		fmt.Fprintf(w, "not run: %s\n", n)
	}
	if rep.Latency != nil {
		l := rep.Latency
		fmt.Fprintf(w, "\nlatency, push into an idle Job → handler start (%d pushes, %d waiting workers): p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
			l.Pushes, l.Workers, l.P50ms, l.P99ms, l.MaxMs)
	}
	if len(rep.RSSFlat) > 0 {
		var parts []string
		for _, p := range rep.RSSFlat {
			parts = append(parts, fmt.Sprintf("%s items: %.1f MiB", human(float64(p.Items)), p.RSSMiB))
		}
		fmt.Fprintf(w, "worker process peak RSS by queue size (B=100, W=4): %s\n", strings.Join(parts, ", "))
	}
	rep.writeVolume(w)
	rep.writeScheduling(w)
	rep.writeScale(w)
	fmt.Fprintln(w)
	for _, c := range rep.Checks {
		kind := "check "
		if c.Target {
			kind = "target"
		}
		fmt.Fprintf(w, "%-7s %s: %s — %s\n", c.Result, kind, c.Name, c.Detail)
	}
	if len(rep.Notes) > 0 {
		fmt.Fprintln(w, "\nnotes:")
		for _, n := range rep.Notes {
			fmt.Fprintf(w, "- %s\n", n)
		}
	}
	if len(rep.Errors) > 0 {
		fmt.Fprintln(w, "\nerrors:")
		for _, e := range rep.Errors {
			fmt.Fprintf(w, "- %s\n", e)
		}
	}
	fmt.Fprintf(w, "\nbench took %.0f s\n", rep.Duration)
}
