package manifests_test

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// The overlays that run workq on a Redis Cluster and on Redis Sentinel,
// siblings of dir.
const (
	clusterDir  = "../../kubernetes-cluster"
	sentinelDir = "../../kubernetes-sentinel"
)

var redisOverlays = []string{clusterDir, sentinelDir}

// redisURL is the WORKQ_REDIS_URL an overlay gives every workq container:
// data.url of its local-config ConfigMap workq-redis-url.
func redisURL(t *testing.T, d string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(d, "redis-url.yaml"))
	require.NoError(t, err)
	objs := &objects{}
	require.NoError(t, objs.decodeManifests(data))
	require.Len(t, objs.configMaps, 1)
	cm := objs.configMaps[0]
	require.Equal(t, "workq-redis-url", cm.Name)
	require.Equal(t, "true", cm.Annotations["config.kubernetes.io/local-config"], "%s: the ConfigMap only feeds the replacements; it is not applied", d)
	require.NotEmpty(t, cm.Data["url"])
	return cm.Data["url"]
}

// workqContainers returns every container that runs coordinator or worker,
// by owner.
func (objs *objects) workqContainers() map[string]corev1.Container {
	out := map[string]corev1.Container{}
	for _, p := range objs.podSpecs() {
		for _, c := range p.spec.Containers {
			if strings.HasPrefix(c.Image, "workq:") {
				out[p.owner+"/"+c.Name] = c
			}
		}
	}
	return out
}

// statefulSet returns the StatefulSet named name.
func (objs *objects) statefulSet(t *testing.T, name string) *appsv1.StatefulSet {
	t.Helper()
	i := slices.IndexFunc(objs.statefulSets, func(s *appsv1.StatefulSet) bool { return s.Name == name })
	require.GreaterOrEqual(t, i, 0, "no StatefulSet %s", name)
	return objs.statefulSets[i]
}

// script returns the shell script a container runs with sh -c, as the
// shell gets it: the kubelet turns $$ into $.
func script(t *testing.T, c corev1.Container) string {
	t.Helper()
	require.Equal(t, []string{"sh", "-c"}, c.Command, "container %s runs a script", c.Name)
	require.Len(t, c.Args, 1, "container %s", c.Name)
	require.NotRegexp(t, `(^|[^$])\$\([a-z]`, c.Args[0], "container %s: $(cmd) would be a kubelet variable reference; write $$(cmd)", c.Name)
	return strings.ReplaceAll(c.Args[0], "$$", "$")
}

// requirePodAddrs checks that every host:port of addrs is a Pod of the
// StatefulSet ss, POD.SERVICE on the port of its governing Service.
func (objs *objects) requirePodAddrs(t *testing.T, addrs []string, ss *appsv1.StatefulSet, port int) {
	t.Helper()
	svc := objs.service(t, ss.Spec.ServiceName)
	require.Equal(t, corev1.ClusterIPNone, svc.Spec.ClusterIP, "Service %s is headless: its Pods have DNS names", svc.Name)
	requireSelects(t, svc, ss.Spec.Template.Labels, "StatefulSet "+ss.Name)
	require.True(t, slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return int(p.Port) == port }),
		"Service %s has port %d", svc.Name, port)
	seen := map[string]bool{}
	for _, a := range addrs {
		host, p, err := net.SplitHostPort(a)
		require.NoError(t, err, a)
		require.Equal(t, strconv.Itoa(port), p, a)
		pod, service, ok := strings.Cut(host, ".")
		require.True(t, ok, "%s is POD.SERVICE", host)
		require.Equal(t, ss.Spec.ServiceName, service, host)
		ordinal, ok := strings.CutPrefix(pod, ss.Name+"-")
		require.True(t, ok, "%s is a Pod of StatefulSet %s", pod, ss.Name)
		n, err := strconv.Atoi(ordinal)
		require.NoError(t, err, pod)
		require.Less(t, int32(n), *ss.Spec.Replicas, "%s exists: the StatefulSet has %d replicas", pod, *ss.Spec.Replicas)
		require.False(t, seen[pod], "%s is listed once", pod)
		seen[pod] = true
	}
	require.Len(t, seen, int(*ss.Spec.Replicas), "the URL lists every Pod of %s", ss.Name)
}

// requireOverlayOf checks what every Redis overlay shares: it renders
// deploy/kubernetes plus added objects, every workq container reads the
// overlay's URL (the password from the Secret), the images are the base's,
// and the local-config ConfigMap is not rendered.
func requireOverlayOf(t *testing.T, d string, objs *objects, added ...string) string {
	t.Helper()
	k := readKustomization(t, d)
	require.Equal(t, "../kubernetes", k.Resources[0], "%s is an overlay of deploy/kubernetes", d)
	require.NotEmpty(t, k.Replacements, "%s sets WORKQ_REDIS_URL with replacements", d)
	listed := slices.Clone(k.Resources[1:])
	slices.Sort(listed)
	require.Equal(t, manifestFiles(t, d), listed, "%s/kustomization.yaml lists every manifest beside it", d)
	for _, f := range manifestFiles(t, d) {
		data, err := os.ReadFile(filepath.Join(d, f))
		require.NoError(t, err)
		require.NoError(t, (&objects{}).decodeManifests(data), "%s/%s decodes strictly", d, f)
	}

	want := append(build(t, dir).names(), added...)
	slices.Sort(want)
	require.Equal(t, want, objs.names(), "%s renders deploy/kubernetes and %v", d, added)
	require.Empty(t, objs.configMaps, "the local-config ConfigMap is not applied")

	base := kustomizeImages(t, readKustomization(t, dir))
	for _, c := range objs.containers() {
		require.Contains(t, []string{base["workq"], base["redis"]}, c.Image, "%s: container %s runs an image of deploy/kubernetes", d, c.Name)
		require.Equal(t, corev1.PullIfNotPresent, c.ImagePullPolicy, "%s: container %s", d, c.Name)
	}

	u := redisURL(t, d)
	workq := objs.workqContainers()
	require.Len(t, workq, 5, "the coordinator, two loaders and two worker Jobs")
	for owner, c := range workq {
		e, ok := envVar(c, "WORKQ_REDIS_URL")
		require.True(t, ok, owner)
		require.Equal(t, u, e.Value, "%s: %s reads the overlay's Redis URL", d, owner)
		objs.requirePasswordFromSecret(t, owner, c, "WORKQ_REDIS_PASSWORD")
	}
	require.NotContains(t, u, "@", "the password comes from the Secret, not the URL")
	return u
}

func TestClusterOverlay(t *testing.T) {
	t.Parallel()
	objs := build(t, clusterDir)
	u := requireOverlayOf(t, clusterDir, objs, "Job/workq-redis-cluster-init")

	ss := objs.statefulSet(t, "workq-redis")
	require.Equal(t, int32(3), *ss.Spec.Replicas, "three primaries")
	c := ss.Spec.Template.Spec.Containers[0]
	node := script(t, c)
	for _, flag := range []string{"--cluster-enabled yes", "--appendonly yes", "--dir /data", "--cluster-config-file /data/nodes.conf",
		`--requirepass "$WORKQ_REDIS_PASSWORD"`, `--cluster-announce-hostname "$(hostname).` + ss.Spec.ServiceName + `"`,
		"--cluster-preferred-endpoint-type hostname"} {
		require.Contains(t, node, flag, "the cluster node's command")
	}
	require.True(t, slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/data" }),
		"nodes.conf and the AOF are on the PVC")
	objs.requirePasswordFromSecret(t, "redis", c, "WORKQ_REDIS_PASSWORD")

	// The URL: the seeds are the StatefulSet's Pods.
	parsed, err := url.Parse(u)
	require.NoError(t, err)
	require.Equal(t, "redis", parsed.Scheme)
	require.Empty(t, strings.Trim(parsed.Path, "/0"), "a cluster has only db 0")
	seeds := append([]string{parsed.Host}, parsed.Query()["addr"]...)
	objs.requirePodAddrs(t, seeds, ss, 6379)

	// The one-shot join names the same nodes, leaves a formed cluster alone,
	// and reads the password from the Secret.
	i := slices.IndexFunc(objs.jobs, func(j *batchv1.Job) bool { return j.Name == "workq-redis-cluster-init" })
	require.GreaterOrEqual(t, i, 0)
	join := objs.jobs[i].Spec.Template.Spec.Containers[0]
	joinScript := script(t, join)
	for _, s := range seeds {
		require.Contains(t, joinScript, s)
	}
	require.Contains(t, joinScript, "--cluster create")
	require.Regexp(t, `cluster info \| grep -q '\^cluster_state:ok'`, joinScript)
	objs.requirePasswordFromSecret(t, "cluster-init", join, "REDISCLI_AUTH")

	// The example loader waits for a formed cluster, not for a PONG.
	for _, j := range objs.jobs {
		for _, ic := range j.Spec.Template.Spec.InitContainers {
			require.Contains(t, strings.Join(ic.Command, " "), "cluster_state:ok", "Job %s: init container %s", j.Name, ic.Name)
		}
	}
}

func TestSentinelOverlay(t *testing.T) {
	t.Parallel()
	objs := build(t, sentinelDir)
	u := requireOverlayOf(t, sentinelDir, objs, "Service/workq-sentinel", "StatefulSet/workq-sentinel")

	data := objs.statefulSet(t, "workq-redis")
	require.Equal(t, int32(2), *data.Spec.Replicas, "a primary and a replica")
	dc := data.Spec.Template.Spec.Containers[0]
	server := script(t, dc)
	primary := data.Name + "-0." + data.Spec.ServiceName
	for _, line := range []string{"appendonly yes", `requirepass \"$WORKQ_REDIS_PASSWORD\"`, `masterauth \"$WORKQ_REDIS_PASSWORD\"`,
		"replica-announce-ip $(hostname)." + data.Spec.ServiceName, "replicaof " + primary + " 6379",
		"[ ! -f /data/redis.conf ]", "exec redis-server /data/redis.conf"} {
		require.Contains(t, server, line, "the data servers' script")
	}
	objs.requirePasswordFromSecret(t, "redis", dc, "WORKQ_REDIS_PASSWORD")

	sent := objs.statefulSet(t, "workq-sentinel")
	require.Equal(t, int32(3), *sent.Spec.Replicas, "three Sentinels")
	for k, v := range sent.Spec.Selector.MatchLabels {
		require.Equal(t, v, sent.Spec.Template.Labels[k], "the StatefulSet selects its own Pods")
	}
	require.Len(t, sent.Spec.VolumeClaimTemplates, 1, "each Sentinel keeps its config on a PVC")
	sc := sent.Spec.Template.Spec.Containers[0]
	sentinel := script(t, sc)
	m := regexp.MustCompile(`sentinel monitor (\S+) (\S+) 6379 2`).FindStringSubmatch(sentinel)
	require.NotNil(t, m, "the Sentinels monitor a primary with quorum 2")
	require.Equal(t, primary, m[2], "the Sentinels monitor the first Pod, which starts as the primary")
	for _, line := range []string{"sentinel resolve-hostnames yes", "sentinel announce-hostnames yes",
		`sentinel auth-pass ` + m[1] + ` \"$WORKQ_REDIS_PASSWORD\"`, "redis-server /data/sentinel.conf --sentinel", "[ ! -f /data/sentinel.conf ]"} {
		require.Contains(t, sentinel, line, "the Sentinels' script")
	}
	objs.requirePasswordFromSecret(t, "sentinel", sc, "WORKQ_REDIS_PASSWORD")
	require.NotNil(t, sc.ReadinessProbe, "a Sentinel is ready once it knows the primary")

	// The URL: the three Sentinels and the master name they monitor.
	rest, ok := strings.CutPrefix(u, "redis+sentinel://")
	require.True(t, ok, u)
	hosts, master, ok := strings.Cut(rest, "/")
	require.True(t, ok, u)
	require.Equal(t, m[1], master, "the URL names the master the Sentinels monitor")
	objs.requirePodAddrs(t, strings.Split(hosts, ","), sent, 26379)
}
