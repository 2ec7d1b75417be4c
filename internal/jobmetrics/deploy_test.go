package jobmetrics_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/workq/workq/internal/jobmetrics"
	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

// The deploy files live at the root of the repository.
const root = "../.."

// capture remembers what is registered, so that metrics no code path has
// touched yet (vectors without children) are known too.
type capture struct {
	prometheus.Registerer
	collectors []prometheus.Collector
}

func (c *capture) Register(col prometheus.Collector) error {
	c.collectors = append(c.collectors, col)
	return c.Registerer.Register(col)
}

func (c *capture) MustRegister(cs ...prometheus.Collector) {
	for _, col := range cs {
		if err := c.Register(col); err != nil {
			panic(err)
		}
	}
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// exportedNames returns every series name workq exports: the worker
// metrics of pkg/queue after a real Worker ran a Job, and this collector's
// metrics read from the same miniredis. A histogram is known by its
// _bucket, _sum and _count series.
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	s, m := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	create(t, s, "demo", jobstate.Spec{MaxAttempts: 1, BatchSize: 2}, "ok-1", "ok-2", "fail")
	_, err := s.Seal(ctx, "demo", "")
	require.NoError(t, err)
	c, err := queue.Open(ctx, queue.Options{URL: "redis://" + m.Addr()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })

	reg := prometheus.NewPedanticRegistry()
	regs := &capture{Registerer: reg}
	metrics := queue.NewMetrics(regs)
	regs.MustRegister(jobmetrics.NewCollector(s, quiet))
	w, err := queue.NewWorker(c, queue.WorkerConfig{Job: "demo", Metrics: metrics, Logger: quiet,
		Handler: queue.HandlerFunc(func(_ context.Context, it queue.Item) error {
			if string(it.Payload) == "fail" {
				return errors.New("boom")
			}
			return nil
		})})
	require.NoError(t, err)
	// The item that fails uses its only attempt: the drained Job fails,
	// and so does its worker.
	require.ErrorIs(t, w.Run(ctx), queue.ErrJobFailed)

	names := map[string]bool{}
	add := func(name string, histogram bool) {
		if histogram {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[name+s] = true
			}
			return
		}
		names[name] = true
	}
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		add(mf.GetName(), mf.GetType() == dto.MetricType_HISTOGRAM)
	}
	for _, col := range regs.collectors {
		_, histogram := col.(*prometheus.HistogramVec)
		ch := make(chan *prometheus.Desc, 32)
		col.Describe(ch)
		close(ch)
		for d := range ch {
			m := fqName.FindStringSubmatch(d.String())
			require.NotNil(t, m, d.String())
			add(m[1], histogram)
		}
	}
	// The worker's histograms were observed, so gathering saw their types.
	require.True(t, names["workq_worker_item_duration_seconds_bucket"])
	require.True(t, names["workq_job_items"])
	return names
}

type grafanaDashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
			Datasource struct{ UID string }
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int    `json:"id"`
		Title      string `json:"title"`
		Type       string `json:"type"`
		Datasource struct{ Type, UID string }
		GridPos    struct{ X, Y, W, H int } `json:"gridPos"`
		Targets    []struct {
			Expr       string `json:"expr"`
			RefID      string `json:"refId"`
			Datasource struct{ UID string }
		} `json:"targets"`
	} `json:"panels"`
}

func readDashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "deploy/grafana/dashboards/workq.json"))
	require.NoError(t, err)
	var d grafanaDashboard
	require.NoError(t, json.Unmarshal(b, &d))
	return d
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, path))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, v), path)
}

// promMetric finds the metric names in a PromQL expression: every
// identifier of workq's namespace (label names never start with it).
var promMetric = regexp.MustCompile(`\bworkq_[a-zA-Z0-9_:]*`)

func TestDeployFiles(t *testing.T) {
	t.Parallel()

	t.Run("TheGrafanaDashboardQueriesOnlyMetricsWorkqExports", func(t *testing.T) {
		t.Parallel()
		exported := exportedNames(t)
		d := readDashboard(t)
		used := map[string]bool{}
		for _, p := range d.Panels {
			require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
			for _, tg := range p.Targets {
				ms := promMetric.FindAllString(tg.Expr, -1)
				require.NotEmpty(t, ms, "panel %q: %q uses no workq metric", p.Title, tg.Expr)
				for _, m := range ms {
					require.True(t, exported[m], "panel %q uses %s, which workq does not export", p.Title, m)
					used[m] = true
				}
			}
		}
		for _, v := range d.Templating.List {
			for _, m := range promMetric.FindAllString(v.Definition, -1) {
				require.True(t, exported[m], "variable %q uses %s, which workq does not export", v.Name, m)
			}
		}
		// The dashboard shows what an operator needs, not a subset.
		for _, m := range []string{"workq_job_items", "workq_job_items_total", "workq_job_throughput_items_per_second",
			"workq_job_oldest_pending_age_seconds", "workq_job_workers", "workq_job_failed_attempts_total",
			"workq_job_lease_takeovers_total", "workq_worker_stale_acks_total",
			"workq_worker_item_duration_seconds_bucket", "workq_worker_lease_roundtrip_seconds_bucket", "workq_redis_up"} {
			require.True(t, used[m], "the dashboard does not show %s", m)
		}
	})

	t.Run("TheGrafanaDashboardIsWellFormed", func(t *testing.T) {
		t.Parallel()
		d := readDashboard(t)
		require.Equal(t, "workq", d.UID)
		ids := map[int]bool{}
		for _, p := range d.Panels {
			require.False(t, ids[p.ID], "panel id %d is used twice", p.ID)
			ids[p.ID] = true
			require.Equal(t, "workq-prometheus", p.Datasource.UID, p.Title)
			require.Positive(t, p.GridPos.W, p.Title)
			require.LessOrEqual(t, p.GridPos.X+p.GridPos.W, 24, p.Title)
			for _, tg := range p.Targets {
				require.Equal(t, "workq-prometheus", tg.Datasource.UID, p.Title)
				require.NotEmpty(t, tg.RefID, p.Title)
				require.Equal(t, strings.Count(tg.Expr, "("), strings.Count(tg.Expr, ")"), "%s: %s", p.Title, tg.Expr)
				require.Equal(t, strings.Count(tg.Expr, "{"), strings.Count(tg.Expr, "}"), "%s: %s", p.Title, tg.Expr)
			}
		}
		require.Len(t, d.Templating.List, 1)
		require.Equal(t, "job", d.Templating.List[0].Name)
	})

	t.Run("PrometheusScrapesTheCoordinatorAndEveryWorkerKeepingTheJobLabel", func(t *testing.T) {
		t.Parallel()
		var cfg struct {
			ScrapeConfigs []struct {
				JobName       string `yaml:"job_name"`
				HonorLabels   bool   `yaml:"honor_labels"`
				MetricsPath   string `yaml:"metrics_path"`
				StaticConfigs []struct {
					Targets []string `yaml:"targets"`
				} `yaml:"static_configs"`
				DNSSDConfigs []struct {
					Names []string `yaml:"names"`
					Type  string   `yaml:"type"`
					Port  int      `yaml:"port"`
				} `yaml:"dns_sd_configs"`
			} `yaml:"scrape_configs"`
		}
		readYAML(t, "deploy/prometheus/prometheus.yml", &cfg)
		require.Len(t, cfg.ScrapeConfigs, 2)
		coord, worker := cfg.ScrapeConfigs[0], cfg.ScrapeConfigs[1]
		require.Equal(t, []string{"coordinator:8080"}, coord.StaticConfigs[0].Targets)
		require.Equal(t, "/metrics", coord.MetricsPath)
		require.Len(t, worker.DNSSDConfigs, 1)
		require.Equal(t, []string{"worker"}, worker.DNSSDConfigs[0].Names)
		require.Equal(t, "A", worker.DNSSDConfigs[0].Type)
		require.Equal(t, 9090, worker.DNSSDConfigs[0].Port)
		// workq's "job" label names the workq Job; without honor_labels
		// Prometheus would rename it to exported_job.
		require.True(t, coord.HonorLabels)
		require.True(t, worker.HonorLabels)
	})

	t.Run("GrafanaProvisioningFindsThePrometheusAndTheDashboard", func(t *testing.T) {
		t.Parallel()
		var ds struct {
			Datasources []struct {
				UID, Type, URL string
			} `yaml:"datasources"`
		}
		readYAML(t, "deploy/grafana/provisioning/datasources/prometheus.yml", &ds)
		require.Len(t, ds.Datasources, 1)
		require.Equal(t, "workq-prometheus", ds.Datasources[0].UID)
		require.Equal(t, "prometheus", ds.Datasources[0].Type)
		require.Equal(t, "http://prometheus:9090", ds.Datasources[0].URL)

		var prov struct {
			Providers []struct {
				Type    string
				Options struct{ Path string }
			} `yaml:"providers"`
		}
		readYAML(t, "deploy/grafana/provisioning/dashboards/workq.yml", &prov)
		require.Len(t, prov.Providers, 1)
		require.Equal(t, "file", prov.Providers[0].Type)
		require.Equal(t, "/var/lib/grafana/dashboards", prov.Providers[0].Options.Path)
	})

	t.Run("TheComposeFileMountsTheseFilesUnderTheMonitoringProfile", func(t *testing.T) {
		t.Parallel()
		var compose struct {
			Services map[string]struct {
				Profiles []string `yaml:"profiles"`
				Volumes  []string `yaml:"volumes"`
			} `yaml:"services"`
		}
		readYAML(t, "docker-compose.yml", &compose)
		names := make([]string, 0, len(compose.Services))
		for n, s := range compose.Services {
			if slices.Contains(s.Profiles, "monitoring") {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		require.Equal(t, []string{"grafana", "prometheus"}, names)
		mounts := map[string]string{}
		for _, n := range names {
			s := compose.Services[n]
			require.Equal(t, []string{"monitoring"}, s.Profiles, n)
			for _, v := range s.Volumes {
				src, dst, _ := strings.Cut(v, ":")
				if strings.HasPrefix(src, "./") {
					_, err := os.Stat(filepath.Join(root, src))
					require.NoError(t, err, "%s mounts %s, which does not exist", n, src)
					mounts[dst] = src
				}
			}
		}
		require.Equal(t, "./deploy/prometheus/prometheus.yml", mounts["/etc/prometheus/prometheus.yml:ro"])
		require.Equal(t, "./deploy/grafana/provisioning", mounts["/etc/grafana/provisioning:ro"])
		require.Equal(t, "./deploy/grafana/dashboards", mounts["/var/lib/grafana/dashboards:ro"])
		require.True(t, slices.ContainsFunc(compose.Services["prometheus"].Volumes, func(v string) bool { return strings.HasPrefix(v, "prometheus-data:") }))
	})
}
