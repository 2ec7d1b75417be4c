// Package manifests_test checks the Kubernetes manifests in deploy/kubernetes
// and the kustomizations keda/, ../kubernetes-local, ../kubernetes-cluster and
// ../kubernetes-sentinel (overlays_test.go): every document
// decodes strictly into the real Kubernetes API types, or for KEDA's
// ScaledJob and ScaledObject into local mirrors of KEDA's types (an unknown
// or misspelt field is an error); each kustomization.yaml lists every
// manifest beside it; the kustomize builds render what the workq deployment
// needs; the worker Jobs follow the work-queue pattern; and KEDA's triggers
// read the coordinator's GET /api/jobs/NAME/work of the Job their workers
// process.
//
// It is its own Go module so that the root module does not depend on k8s.io:
//
//	cd deploy/kubernetes/manifests_test && go test ./...
package manifests_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
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
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// The kustomizations, relative to this module.
const (
	// dir is deploy/kubernetes, the parent of this module: Redis, the
	// coordinator and the example Jobs.
	dir = ".."
	// localDir is dir on the images of deploy/docker/build-images.sh.
	localDir = "../../kubernetes-local"
	// kedaDir holds the autoscaled workers, applied on top of dir.
	kedaDir = "../keda"
)

// objects is every decoded manifest of one rendering, by kind.
type objects struct {
	configMaps    []*corev1.ConfigMap
	secrets       []*corev1.Secret
	services      []*corev1.Service
	statefulSets  []*appsv1.StatefulSet
	deployments   []*appsv1.Deployment
	jobs          []*batchv1.Job
	scaledJobs    []*scaledJob
	scaledObjects []*scaledObject
}

// merge adds every object of o to objs: the renderings of dir and kedaDir
// are applied together.
func (objs *objects) merge(o *objects) {
	objs.configMaps = append(objs.configMaps, o.configMaps...)
	objs.secrets = append(objs.secrets, o.secrets...)
	objs.services = append(objs.services, o.services...)
	objs.statefulSets = append(objs.statefulSets, o.statefulSets...)
	objs.deployments = append(objs.deployments, o.deployments...)
	objs.jobs = append(objs.jobs, o.jobs...)
	objs.scaledJobs = append(objs.scaledJobs, o.scaledJobs...)
	objs.scaledObjects = append(objs.scaledObjects, o.scaledObjects...)
}

// The KEDA types below mirror the fields of keda.sh/v1alpha1 ScaledJob and
// ScaledObject (github.com/kedacore/keda/v2/apis/keda/v1alpha1) that a
// manifest may set, with KEDA's JSON names, so that they decode strictly
// without importing KEDA and its dependencies into this module.

// scaleTrigger is KEDA's ScaleTriggers.
type scaleTrigger struct {
	Type              string            `json:"type"`
	Name              string            `json:"name,omitempty"`
	UseCachedMetrics  bool              `json:"useCachedMetrics,omitempty"`
	Metadata          map[string]string `json:"metadata"`
	AuthenticationRef *struct {
		Name string `json:"name"`
		Kind string `json:"kind,omitempty"`
	} `json:"authenticationRef,omitempty"`
	MetricType autoscalingv2.MetricTargetType `json:"metricType,omitempty"`
}

// scaledJob is KEDA's ScaledJob.
type scaledJob struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		JobTargetRef               *batchv1.JobSpec `json:"jobTargetRef"`
		PollingInterval            *int32           `json:"pollingInterval,omitempty"`
		SuccessfulJobsHistoryLimit *int32           `json:"successfulJobsHistoryLimit,omitempty"`
		FailedJobsHistoryLimit     *int32           `json:"failedJobsHistoryLimit,omitempty"`
		RolloutStrategy            string           `json:"rolloutStrategy,omitempty"`
		Rollout                    *struct {
			Strategy          string `json:"strategy,omitempty"`
			PropagationPolicy string `json:"propagationPolicy,omitempty"`
		} `json:"rollout,omitempty"`
		EnvSourceContainerName string `json:"envSourceContainerName,omitempty"`
		MinReplicaCount        *int32 `json:"minReplicaCount,omitempty"`
		MaxReplicaCount        *int32 `json:"maxReplicaCount,omitempty"`
		ScalingStrategy        *struct {
			Strategy                          string   `json:"strategy,omitempty"`
			CustomScalingQueueLengthDeduction *int32   `json:"customScalingQueueLengthDeduction,omitempty"`
			CustomScalingRunningJobPercentage string   `json:"customScalingRunningJobPercentage,omitempty"`
			PendingPodConditions              []string `json:"pendingPodConditions,omitempty"`
			MultipleScalersCalculation        string   `json:"multipleScalersCalculation,omitempty"`
		} `json:"scalingStrategy,omitempty"`
		Triggers []scaleTrigger `json:"triggers"`
	} `json:"spec"`
}

// scaledObject is KEDA's ScaledObject.
type scaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		ScaleTargetRef *struct {
			Name                   string `json:"name"`
			APIVersion             string `json:"apiVersion,omitempty"`
			Kind                   string `json:"kind,omitempty"`
			EnvSourceContainerName string `json:"envSourceContainerName,omitempty"`
		} `json:"scaleTargetRef"`
		PollingInterval       *int32 `json:"pollingInterval,omitempty"`
		InitialCooldownPeriod *int32 `json:"initialCooldownPeriod,omitempty"`
		CooldownPeriod        *int32 `json:"cooldownPeriod,omitempty"`
		IdleReplicaCount      *int32 `json:"idleReplicaCount,omitempty"`
		MinReplicaCount       *int32 `json:"minReplicaCount,omitempty"`
		MaxReplicaCount       *int32 `json:"maxReplicaCount,omitempty"`
		Advanced              *struct {
			HorizontalPodAutoscalerConfig *struct {
				Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
				Name     string                                         `json:"name,omitempty"`
			} `json:"horizontalPodAutoscalerConfig,omitempty"`
			RestoreToOriginalReplicaCount bool `json:"restoreToOriginalReplicaCount,omitempty"`
			ScalingModifiers              *struct {
				Formula          string                         `json:"formula,omitempty"`
				Target           string                         `json:"target,omitempty"`
				ActivationTarget string                         `json:"activationTarget,omitempty"`
				MetricType       autoscalingv2.MetricTargetType `json:"metricType,omitempty"`
			} `json:"scalingModifiers,omitempty"`
		} `json:"advanced,omitempty"`
		Triggers []scaleTrigger `json:"triggers"`
		Fallback *struct {
			FailureThreshold int32  `json:"failureThreshold"`
			Replicas         int32  `json:"replicas"`
			Behavior         string `json:"behavior,omitempty"`
		} `json:"fallback,omitempty"`
	} `json:"spec"`
}

// typeMeta is what a document says it is.
type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// decodeStrict decodes one JSON document into v, refusing unknown fields and
// trailing data.
func decodeStrict(doc []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("trailing data after the document")
	}
	return nil
}

// splitDocuments splits a YAML stream on its "---" lines and drops empty
// documents (only comments or whitespace).
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	for _, part := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1) {
		empty := true
		for _, line := range strings.Split(part, "\n") {
			line = strings.TrimSpace(line)
			if line != "" && !strings.HasPrefix(line, "#") {
				empty = false
				break
			}
		}
		if !empty {
			docs = append(docs, []byte(part))
		}
	}
	return docs
}

// decodeManifests decodes a YAML stream strictly into the Kubernetes API types
// and adds the objects to objs. Kinds this deployment does not use are errors.
func (objs *objects) decodeManifests(data []byte) error {
	for i, doc := range splitDocuments(data) {
		js, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			return fmt.Errorf("document %d: %w", i, err)
		}
		var tm typeMeta
		if err := json.Unmarshal(js, &tm); err != nil {
			return fmt.Errorf("document %d: %w", i, err)
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "v1 ConfigMap":
			c := &corev1.ConfigMap{}
			objs.configMaps, obj = append(objs.configMaps, c), c
		case "v1 Secret":
			s := &corev1.Secret{}
			objs.secrets, obj = append(objs.secrets, s), s
		case "v1 Service":
			s := &corev1.Service{}
			objs.services, obj = append(objs.services, s), s
		case "apps/v1 StatefulSet":
			s := &appsv1.StatefulSet{}
			objs.statefulSets, obj = append(objs.statefulSets, s), s
		case "apps/v1 Deployment":
			d := &appsv1.Deployment{}
			objs.deployments, obj = append(objs.deployments, d), d
		case "batch/v1 Job":
			j := &batchv1.Job{}
			objs.jobs, obj = append(objs.jobs, j), j
		case "keda.sh/v1alpha1 ScaledJob":
			j := &scaledJob{}
			objs.scaledJobs, obj = append(objs.scaledJobs, j), j
		case "keda.sh/v1alpha1 ScaledObject":
			o := &scaledObject{}
			objs.scaledObjects, obj = append(objs.scaledObjects, o), o
		default:
			return fmt.Errorf("document %d: unexpected apiVersion %q kind %q", i, tm.APIVersion, tm.Kind)
		}
		if err := decodeStrict(js, obj); err != nil {
			return fmt.Errorf("document %d (%s): %w", i, tm.Kind, err)
		}
	}
	return nil
}

// kustomizePatch is one entry of a kustomization's patches.
type kustomizePatch struct {
	Target struct {
		Kind string `json:"kind"`
		Name string `json:"name"`
	} `json:"target"`
	Patch string `json:"patch"`
}

// kustomization is the part of kustomization.yaml that this deployment uses;
// it is decoded strictly too, so a misspelt key fails here.
type kustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Labels     []struct {
		Pairs            map[string]string `json:"pairs"`
		IncludeSelectors bool              `json:"includeSelectors,omitempty"`
		IncludeTemplates bool              `json:"includeTemplates,omitempty"`
	} `json:"labels,omitempty"`
	Resources []string `json:"resources"`
	Images    []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
		Digest  string `json:"digest,omitempty"`
	} `json:"images"`
	Patches      []kustomizePatch  `json:"patches"`
	Replacements []json.RawMessage `json:"replacements"`
}

func readKustomization(t *testing.T, dir string) kustomization {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	require.NoError(t, err)
	js, err := yaml.YAMLToJSONStrict(data)
	require.NoError(t, err)
	var k kustomization
	require.NoError(t, decodeStrict(js, &k), "%s/kustomization.yaml", dir)
	return k
}

// manifestFiles lists the YAML files of dir but kustomization.yaml.
func manifestFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	for _, pattern := range []string{"*.yaml", "*.yml"} {
		m, err := filepath.Glob(filepath.Join(dir, pattern))
		require.NoError(t, err)
		for _, f := range m {
			if base := filepath.Base(f); base != "kustomization.yaml" {
				files = append(files, base)
			}
		}
	}
	slices.Sort(files)
	return files
}

// build renders the kustomization in dir with kustomize, in process, and
// decodes the result strictly.
func build(t *testing.T, dir string) *objects {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	abs, err := filepath.Abs(dir)
	require.NoError(t, err)
	resMap, err := k.Run(filesys.MakeFsOnDisk(), abs)
	require.NoError(t, err, "kustomize build %s", dir)
	out, err := resMap.AsYaml()
	require.NoError(t, err)
	objs := &objects{}
	require.NoError(t, objs.decodeManifests(out), "the kustomize output decodes strictly:\n%s", out)
	return objs
}

func TestEveryManifestDecodesStrictly(t *testing.T) {
	t.Parallel()
	for _, d := range []string{dir, kedaDir} {
		files := manifestFiles(t, d)
		require.NotEmpty(t, files)
		for _, f := range files {
			t.Run(filepath.Join(d, f), func(t *testing.T) {
				t.Parallel()
				data, err := os.ReadFile(filepath.Join(d, f))
				require.NoError(t, err)
				objs := &objects{}
				require.NoError(t, objs.decodeManifests(data))
			})
		}
	}
}

func TestStrictDecodingRefusesUnknownFields(t *testing.T) {
	t.Parallel()
	objs := &objects{}
	err := objs.decodeManifests([]byte("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: x\nspec:\n  paralelism: 3\n"))
	require.ErrorContains(t, err, "paralelism")
	err = objs.decodeManifests([]byte("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: x\n  name: y\n"))
	require.Error(t, err, "a duplicate key is an error")
	err = objs.decodeManifests([]byte("apiVersion: keda.sh/v1alpha1\nkind: ScaledJob\nmetadata:\n  name: x\nspec:\n  maxReplicaCount: 3\n  trigers: []\n"))
	require.ErrorContains(t, err, "trigers", "the KEDA mirrors are strict too")
	err = objs.decodeManifests([]byte("apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata:\n  name: x\nspec:\n  scaleTargetRef:\n    name: w\n    kind: Deployment\n  minReplicas: 0\n"))
	require.ErrorContains(t, err, "minReplicas")
	err = objs.decodeManifests([]byte("apiVersion: keda.sh/v1alpha1\nkind: ScaledJob\nmetadata:\n  name: x\nspec:\n  jobTargetRef:\n    paralelism: 1\n"))
	require.ErrorContains(t, err, "paralelism", "a ScaledJob's Job spec is the real batch/v1 type")
}

func TestKustomizationListsEveryManifest(t *testing.T) {
	t.Parallel()
	for _, d := range []string{dir, kedaDir} {
		k := readKustomization(t, d)
		require.Equal(t, "kustomize.config.k8s.io/v1beta1", k.APIVersion)
		require.Equal(t, "Kustomization", k.Kind)
		listed := slices.Clone(k.Resources)
		slices.Sort(listed)
		require.Equal(t, manifestFiles(t, d), listed, "%s/kustomization.yaml lists every manifest beside it, and only those", d)
	}
	k := readKustomization(t, localDir)
	require.Equal(t, []string{"../kubernetes"}, k.Resources, "kubernetes-local is deploy/kubernetes with other images")
	require.Empty(t, manifestFiles(t, localDir))
}

// kustomizeImages returns, for a kustomization, the image each bare name in
// its manifests is rendered as.
func kustomizeImages(t *testing.T, k kustomization) map[string]string {
	t.Helper()
	want := map[string]string{}
	for _, img := range k.Images {
		name := img.Name
		if img.NewName != "" {
			name = img.NewName
		}
		require.NotEmpty(t, img.NewTag, "image %s has a tag in kustomization.yaml", img.Name)
		want[img.Name] = name + ":" + img.NewTag
	}
	return want
}

func TestKustomizeBuildSetsImagesInOnePlace(t *testing.T) {
	t.Parallel()
	base := kustomizeImages(t, readKustomization(t, dir))
	require.Contains(t, base, "workq")
	require.Contains(t, base, "redis")

	for d, used := range map[string]int{dir: 2, kedaDir: 1} {
		want := kustomizeImages(t, readKustomization(t, d))
		require.Equal(t, base["workq"], want["workq"], "%s renders the same workq image as %s", d, dir)

		// In the manifests, every image is a bare name that kustomization.yaml sets.
		for _, f := range manifestFiles(t, d) {
			data, err := os.ReadFile(filepath.Join(d, f))
			require.NoError(t, err)
			objs := &objects{}
			require.NoError(t, objs.decodeManifests(data))
			for _, c := range objs.containers() {
				name, _, _ := strings.Cut(c.Image, ":")
				require.Contains(t, want, name, "%s/%s: container %s uses image %s, which kustomization.yaml does not set", d, f, c.Name, c.Image)
			}
		}

		seen := map[string]bool{}
		for _, c := range build(t, d).containers() {
			require.Contains(t, slices.Collect(maps.Values(want)), c.Image, "%s: container %s", d, c.Name)
			seen[c.Image] = true
			// A "latest" tag defaults to Always, which fails for images that
			// were loaded into a cluster instead of pushed.
			require.Equal(t, corev1.PullIfNotPresent, c.ImagePullPolicy, "%s: container %s", d, c.Name)
		}
		require.Len(t, seen, used, "%s uses the images it sets", d)
	}
}

func TestLocalOverlayRunsTheImagesOfTheBuildScript(t *testing.T) {
	t.Parallel()
	base, local := build(t, dir), build(t, localDir)
	require.Equal(t, base.names(), local.names(), "kubernetes-local renders the same objects as deploy/kubernetes")
	images := map[string]bool{}
	for _, c := range local.containers() {
		images[c.Image] = true
		require.Equal(t, corev1.PullIfNotPresent, c.ImagePullPolicy, "container %s", c.Name)
	}
	// The tags that deploy/docker/build-images.sh gives its images.
	require.Equal(t, map[string]bool{"workq:latest": true, "workq-redis:latest": true}, images)
}

// names lists "Kind/name" of every object.
func (objs *objects) names() []string {
	var out []string
	add := func(kind string, metas ...metav1.ObjectMeta) {
		for _, m := range metas {
			out = append(out, kind+"/"+m.Name)
		}
	}
	for _, o := range objs.configMaps {
		add("ConfigMap", o.ObjectMeta)
	}
	for _, o := range objs.secrets {
		add("Secret", o.ObjectMeta)
	}
	for _, o := range objs.services {
		add("Service", o.ObjectMeta)
	}
	for _, o := range objs.statefulSets {
		add("StatefulSet", o.ObjectMeta)
	}
	for _, o := range objs.deployments {
		add("Deployment", o.ObjectMeta)
	}
	for _, o := range objs.jobs {
		add("Job", o.ObjectMeta)
	}
	for _, o := range objs.scaledJobs {
		add("ScaledJob", o.ObjectMeta)
	}
	for _, o := range objs.scaledObjects {
		add("ScaledObject", o.ObjectMeta)
	}
	slices.Sort(out)
	return out
}

// podSpec is a Pod template's spec and what it belongs to.
type podSpec struct {
	owner string
	spec  corev1.PodSpec
}

// podSpecs lists the spec of every Pod template.
func (objs *objects) podSpecs() []podSpec {
	var out []podSpec
	for _, s := range objs.statefulSets {
		out = append(out, podSpec{"StatefulSet " + s.Name, s.Spec.Template.Spec})
	}
	for _, d := range objs.deployments {
		out = append(out, podSpec{"Deployment " + d.Name, d.Spec.Template.Spec})
	}
	for _, j := range objs.jobs {
		out = append(out, podSpec{"Job " + j.Name, j.Spec.Template.Spec})
	}
	for _, j := range objs.scaledJobs {
		if j.Spec.JobTargetRef != nil {
			out = append(out, podSpec{"ScaledJob " + j.Name, j.Spec.JobTargetRef.Template.Spec})
		}
	}
	return out
}

// containers lists every container and init container of every Pod template.
func (objs *objects) containers() []corev1.Container {
	var out []corev1.Container
	for _, p := range objs.podSpecs() {
		out = append(out, p.spec.InitContainers...)
		out = append(out, p.spec.Containers...)
	}
	return out
}

func envVar(c corev1.Container, name string) (corev1.EnvVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

// requireRedisWiring checks that the container reaches Redis through the Redis
// Service and reads the password from the Secret.
func (objs *objects) requireRedisWiring(t *testing.T, where string, c corev1.Container) {
	t.Helper()
	e, ok := envVar(c, "WORKQ_REDIS_URL")
	require.True(t, ok, "%s: container %s sets WORKQ_REDIS_URL", where, c.Name)
	u, err := url.Parse(e.Value)
	require.NoError(t, err, "%s: WORKQ_REDIS_URL", where)
	require.Equal(t, "redis", u.Scheme, "%s: WORKQ_REDIS_URL %s", where, e.Value)
	require.Nil(t, u.User, "%s: the password comes from the Secret, not the URL", where)
	svc := objs.service(t, u.Hostname())
	port, err := strconv.Atoi(u.Port())
	require.NoError(t, err, "%s: WORKQ_REDIS_URL %s names a port", where, e.Value)
	require.True(t, slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return int(p.Port) == port }),
		"%s: Service %s has port %d", where, svc.Name, port)
	require.Equal(t, "redis", svc.Labels["app.kubernetes.io/component"], "%s: %s is the Redis Service", where, svc.Name)

	objs.requirePasswordFromSecret(t, where, c, "WORKQ_REDIS_PASSWORD")
}

func (objs *objects) requirePasswordFromSecret(t *testing.T, where string, c corev1.Container, name string) {
	t.Helper()
	e, ok := envVar(c, name)
	require.True(t, ok, "%s: container %s sets %s", where, c.Name, name)
	require.Empty(t, e.Value, "%s: %s comes from the Secret", where, name)
	require.NotNil(t, e.ValueFrom, "%s: %s", where, name)
	ref := e.ValueFrom.SecretKeyRef
	require.NotNil(t, ref, "%s: %s comes from a secretKeyRef", where, name)
	secret := objs.secret(t, ref.Name)
	_, inData := secret.Data[ref.Key]
	_, inStringData := secret.StringData[ref.Key]
	require.True(t, inData || inStringData, "%s: Secret %s has the key %s", where, secret.Name, ref.Key)
}

func (objs *objects) service(t *testing.T, name string) *corev1.Service {
	t.Helper()
	for _, s := range objs.services {
		if s.Name == name {
			return s
		}
	}
	require.FailNowf(t, "no Service", "no Service named %q", name)
	return nil
}

func (objs *objects) secret(t *testing.T, name string) *corev1.Secret {
	t.Helper()
	for _, s := range objs.secrets {
		if s.Name == name {
			return s
		}
	}
	require.FailNowf(t, "no Secret", "no Secret named %q", name)
	return nil
}

// requireSelects checks that a Service selects the Pods of a template.
func requireSelects(t *testing.T, svc *corev1.Service, podLabels map[string]string, what string) {
	t.Helper()
	require.NotEmpty(t, svc.Spec.Selector, "Service %s has a selector", svc.Name)
	for k, v := range svc.Spec.Selector {
		require.Equal(t, v, podLabels[k], "Service %s selects the Pods of %s (label %s)", svc.Name, what, k)
	}
}

func TestRedis(t *testing.T) {
	t.Parallel()
	objs := build(t, dir)
	require.Len(t, objs.statefulSets, 1)
	ss := objs.statefulSets[0]
	svc := objs.service(t, ss.Spec.ServiceName)
	requireSelects(t, svc, ss.Spec.Template.Labels, "StatefulSet "+ss.Name)
	require.Equal(t, corev1.ClusterIPNone, svc.Spec.ClusterIP, "the governing Service of a StatefulSet is headless")
	for k, v := range ss.Spec.Selector.MatchLabels {
		require.Equal(t, v, ss.Spec.Template.Labels[k], "the StatefulSet selects its own Pods")
	}

	require.Len(t, ss.Spec.Template.Spec.Containers, 1)
	c := ss.Spec.Template.Spec.Containers[0]
	args := strings.Join(append(slices.Clone(c.Command), c.Args...), " ")
	require.Contains(t, args, "--appendonly yes", "Redis runs with the AOF on")
	require.Contains(t, args, "--requirepass $(WORKQ_REDIS_PASSWORD)", "Redis requires the password of the Secret")
	objs.requirePasswordFromSecret(t, "redis", c, "WORKQ_REDIS_PASSWORD")
	objs.requirePasswordFromSecret(t, "redis", c, "REDISCLI_AUTH")

	require.Len(t, ss.Spec.VolumeClaimTemplates, 1, "Redis data lives on a PersistentVolumeClaim per Pod")
	claim := ss.Spec.VolumeClaimTemplates[0]
	mount := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == claim.Name })
	require.GreaterOrEqual(t, mount, 0, "the container mounts the claim %s", claim.Name)
	require.Equal(t, "/data", c.VolumeMounts[mount].MountPath)
	require.Contains(t, args, "--dir /data", "Redis writes its AOF on the claim")
	require.False(t, claim.Spec.Resources.Requests.Storage().IsZero(), "the claim requests storage")

	port := slices.IndexFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.ContainerPort == 6379 })
	require.GreaterOrEqual(t, port, 0)
	require.Equal(t, c.Ports[port].Name, svc.Spec.Ports[0].TargetPort.String(), "the Service targets the Redis port")
}

func TestCoordinator(t *testing.T) {
	t.Parallel()
	objs := build(t, dir)
	require.Len(t, objs.deployments, 1)
	d := objs.deployments[0]
	require.Len(t, d.Spec.Template.Spec.Containers, 1)
	c := d.Spec.Template.Spec.Containers[0]
	require.Equal(t, []string{"coordinator"}, c.Command)
	require.Equal(t, "serve", c.Args[0])
	require.Contains(t, c.Args, ":8080")
	objs.requireRedisWiring(t, "Deployment "+d.Name, c)
	// Readiness asks Redis (/healthz); liveness must not (/livez), or a
	// Redis outage restarts the coordinator in a loop.
	require.NotNil(t, c.ReadinessProbe)
	require.NotNil(t, c.ReadinessProbe.HTTPGet)
	require.Equal(t, "/healthz", c.ReadinessProbe.HTTPGet.Path)
	require.NotNil(t, c.LivenessProbe)
	require.NotNil(t, c.LivenessProbe.HTTPGet, "the liveness probe asks the coordinator's HTTP server, not Redis")
	require.Equal(t, "/livez", c.LivenessProbe.HTTPGet.Path)
	require.Equal(t, c.ReadinessProbe.HTTPGet.Port, c.LivenessProbe.HTTPGet.Port)
	port := slices.IndexFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == c.LivenessProbe.HTTPGet.Port.String() })
	require.GreaterOrEqual(t, port, 0, "the probes name a port of the container")
	require.EqualValues(t, 8080, c.Ports[port].ContainerPort)

	svc := objs.service(t, d.Name)
	requireSelects(t, svc, d.Spec.Template.Labels, "Deployment "+d.Name)
	require.Equal(t, int32(8080), svc.Spec.Ports[0].Port)
	for k, v := range d.Spec.Selector.MatchLabels {
		require.Equal(t, v, d.Spec.Template.Labels[k], "the Deployment selects its own Pods")
	}
}

// workqJob returns the workq Job that a loader creates (`coordinator create NAME`)
// and the value of its --parallelism flag.
func workqJob(t *testing.T, c corev1.Container) (name, parallelism string, args []string) {
	t.Helper()
	require.Equal(t, []string{"coordinator"}, c.Command, "loader %s runs the coordinator", c.Name)
	require.GreaterOrEqual(t, len(c.Args), 2)
	require.Equal(t, "create", c.Args[0])
	require.Contains(t, c.Args, "--if-not-exists", "a retried loader does not fail on the Job it made")
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--parallelism="); ok {
			parallelism = v
		}
	}
	return c.Args[1], parallelism, c.Args
}

// expand replaces $(VAR) with the container's literal env values, as the kubelet does.
func expand(c corev1.Container, s string) string {
	for _, e := range c.Env {
		s = strings.ReplaceAll(s, "$("+e.Name+")", e.Value)
	}
	return s
}

func TestWorkerJobsFollowTheWorkQueuePattern(t *testing.T) {
	t.Parallel()
	objs := build(t, dir)
	k := readKustomization(t, dir)

	loaders := map[string]*batchv1.Job{} // workq Job name -> loader
	workers := map[string]*batchv1.Job{} // workq Job name -> worker Job
	for _, j := range objs.jobs {
		spec := j.Spec.Template.Spec
		require.Len(t, spec.Containers, 1, "Job %s", j.Name)
		c := spec.Containers[0]
		objs.requireRedisWiring(t, "Job "+j.Name, c)
		require.NotNil(t, j.Spec.BackoffLimit, "Job %s sets backoffLimit", j.Name)
		require.Equal(t, corev1.RestartPolicyOnFailure, spec.RestartPolicy, "Job %s", j.Name)
		switch j.Labels["app.kubernetes.io/component"] {
		case "loader":
			name, _, _ := workqJob(t, c)
			require.Equal(t, name, j.Labels["workq.io/job"], "Job %s is labelled with its workq Job", j.Name)
			loaders[name] = j
		case "worker":
			require.Equal(t, []string{"worker"}, c.Command, "Job %s runs the worker", j.Name)
			e, ok := envVar(c, "WORKQ_JOB")
			require.True(t, ok, "Job %s names its workq Job in WORKQ_JOB", j.Name)
			require.Equal(t, e.Value, j.Labels["workq.io/job"], "Job %s is labelled with its workq Job", j.Name)
			workers[e.Value] = j
		default:
			require.FailNowf(t, "unknown component", "Job %s has component %q", j.Name, j.Labels["app.kubernetes.io/component"])
		}
	}
	require.Len(t, workers, 2, "the work-queue example and the indexed example")
	require.Equal(t, slices.Sorted(maps.Keys(loaders)), slices.Sorted(maps.Keys(workers)), "every worker Job has a loader that creates its workq Job, and the reverse")

	for name, w := range workers {
		t.Run(name, func(t *testing.T) {
			// Kubernetes' "queue with variable pod count": parallelism set,
			// completions unset, so that the Pods, not a count, end the Job.
			require.NotNil(t, w.Spec.Parallelism, "Job %s sets parallelism", w.Name)
			require.Positive(t, *w.Spec.Parallelism)
			require.Nil(t, w.Spec.Completions, "Job %s leaves completions unset", w.Name)
			require.Nil(t, w.Spec.CompletionMode, "Job %s is not an Indexed Job to Kubernetes: workq hands out the work", w.Name)
			require.Equal(t, corev1.RestartPolicyOnFailure, w.Spec.Template.Spec.RestartPolicy)
			require.NotNil(t, w.Spec.BackoffLimit)

			c := w.Spec.Template.Spec.Containers[0]
			dash := slices.Index(c.Args, "--")
			require.Positive(t, dash, "Job %s: worker flags, then -- and the command", w.Name)
			require.Less(t, dash, len(c.Args)-1, "Job %s has a command after --", w.Name)
			require.Contains(t, c.Args[:dash], "--wait", "Job %s: the worker waits for Redis and its Job by itself", w.Name)

			// The parallelism is set once, in kustomization.yaml, and the loader
			// creates the workq Job with the same value.
			patched := slices.ContainsFunc(k.Patches, func(p kustomizePatch) bool {
				return p.Target.Kind == "Job" && p.Target.Name == w.Name &&
					strings.Contains(p.Patch, "/spec/parallelism") &&
					strings.Contains(p.Patch, fmt.Sprintf("value: %d", *w.Spec.Parallelism))
			})
			require.True(t, patched, "kustomization.yaml sets the parallelism of Job %s", w.Name)
			l := loaders[name].Spec.Template.Spec.Containers[0]
			_, parallelism, args := workqJob(t, l)
			require.Equal(t, strconv.Itoa(int(*w.Spec.Parallelism)), expand(l, parallelism),
				"loader %s creates %s with the worker Job's parallelism", loaders[name].Name, name)

			completions := slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--completions") })
			if completions {
				require.NotContains(t, args, "-f", "an indexed Job gets its items from --completions")
			} else {
				require.Contains(t, args, "--seal", "a work-queue Job is sealed once loaded, or it never drains")
			}
		})
	}
	indexed := 0
	for _, l := range loaders {
		_, _, args := workqJob(t, l.Spec.Template.Spec.Containers[0])
		if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--completions") }) {
			indexed++
		}
	}
	require.Equal(t, 1, indexed, "one example is an indexed workq Job (--completions)")
}

// all renders deploy/kubernetes and keda/ as they are applied: together.
func all(t *testing.T) *objects {
	t.Helper()
	objs := build(t, dir)
	objs.merge(build(t, kedaDir))
	return objs
}

// everyRendering is every set of objects that is applied: deploy/kubernetes
// with keda/, and each Redis overlay.
func everyRendering(t *testing.T) *objects {
	t.Helper()
	objs := all(t)
	for _, d := range redisOverlays {
		objs.merge(build(t, d))
	}
	return objs
}

func TestPodsRunAsNonRoot(t *testing.T) {
	t.Parallel()
	specs := everyRendering(t).podSpecs()
	require.NotEmpty(t, specs)
	for _, p := range specs {
		spec := p.spec
		require.NotNil(t, spec.SecurityContext, p.owner)
		require.NotNil(t, spec.SecurityContext.RunAsNonRoot, p.owner)
		require.True(t, *spec.SecurityContext.RunAsNonRoot, p.owner)
		require.NotNil(t, spec.SecurityContext.RunAsUser, p.owner)
		require.NotZero(t, *spec.SecurityContext.RunAsUser, p.owner)
		for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
			require.NotNil(t, c.SecurityContext, "%s: container %s", p.owner, c.Name)
			require.NotNil(t, c.SecurityContext.AllowPrivilegeEscalation, "%s: container %s", p.owner, c.Name)
			require.False(t, *c.SecurityContext.AllowPrivilegeEscalation, "%s: container %s", p.owner, c.Name)
		}
	}
}

func TestEveryContainerRequestsResources(t *testing.T) {
	t.Parallel()
	for _, p := range everyRendering(t).podSpecs() {
		for _, c := range append(slices.Clone(p.spec.InitContainers), p.spec.Containers...) {
			req := c.Resources.Requests
			require.False(t, req.Cpu().IsZero(), "%s: container %s requests CPU, so the scheduler counts it", p.owner, c.Name)
			require.False(t, req.Memory().IsZero(), "%s: container %s requests memory", p.owner, c.Name)
			limit := c.Resources.Limits.Memory()
			require.False(t, limit.IsZero(), "%s: container %s has a memory limit", p.owner, c.Name)
			require.GreaterOrEqual(t, limit.Cmp(*req.Memory()), 0, "%s: container %s", p.owner, c.Name)
		}
	}
}

func TestJobsAreDeletedAfterTheyFinish(t *testing.T) {
	t.Parallel()
	objs := everyRendering(t)
	specs := map[string]batchv1.JobSpec{}
	for _, j := range objs.jobs {
		specs["Job "+j.Name] = j.Spec
	}
	for _, j := range objs.scaledJobs {
		require.NotNil(t, j.Spec.JobTargetRef, "ScaledJob %s", j.Name)
		specs["ScaledJob "+j.Name] = *j.Spec.JobTargetRef
	}
	require.NotEmpty(t, specs)
	for owner, spec := range specs {
		require.NotNil(t, spec.TTLSecondsAfterFinished, "%s sets ttlSecondsAfterFinished", owner)
		require.Positive(t, *spec.TTLSecondsAfterFinished, owner)
	}
}

// kedaTrigger checks the trigger of a ScaledJob or ScaledObject: one
// metrics-api trigger that reads the work of a workq Job from the
// coordinator's Service. It returns that Job's name and the targetValue.
func (objs *objects) kedaTrigger(t *testing.T, owner string, triggers []scaleTrigger) (job string, target int) {
	t.Helper()
	require.Len(t, triggers, 1, "%s has one trigger", owner)
	tr := triggers[0]
	require.Equal(t, "metrics-api", tr.Type, owner)
	require.Nil(t, tr.AuthenticationRef, "%s: the endpoint is read-only and needs no credentials", owner)
	// The metrics-api scaler's parameters; a misspelt key would be ignored by KEDA.
	known := []string{"url", "format", "valueLocation", "targetValue", "activationTargetValue"}
	for k := range tr.Metadata {
		require.Contains(t, known, k, "%s: trigger metadata key %q", owner, k)
	}
	require.Equal(t, "json", tr.Metadata["format"], owner)
	require.Equal(t, "work", tr.Metadata["valueLocation"], "%s reads the field \"work\" of GET /api/jobs/NAME/work", owner)
	target, err := strconv.Atoi(tr.Metadata["targetValue"])
	require.NoError(t, err, "%s: targetValue is a whole number of items", owner)
	require.Positive(t, target, owner)
	if v, ok := tr.Metadata["activationTargetValue"]; ok {
		a, err := strconv.Atoi(v)
		require.NoError(t, err, owner)
		require.GreaterOrEqual(t, a, 0, owner)
	}

	u, err := url.Parse(tr.Metadata["url"])
	require.NoError(t, err, "%s: url", owner)
	require.Equal(t, "http", u.Scheme, owner)
	require.Empty(t, u.RawQuery, owner)
	// KEDA runs in its own namespace: the URL names the Service's namespace.
	host := strings.TrimSuffix(u.Hostname(), ".cluster.local")
	svcName, ns, ok := strings.Cut(host, ".")
	require.True(t, ok, "%s: url host %s is SERVICE.NAMESPACE.svc", owner, u.Hostname())
	require.Equal(t, "default.svc", ns, "%s: url host %s is SERVICE.NAMESPACE.svc, in the namespace the manifests are applied to", owner, u.Hostname())
	svc := objs.service(t, svcName)
	require.Equal(t, "coordinator", svc.Labels["app.kubernetes.io/component"], "%s reads the coordinator's Service", owner)
	port, err := strconv.Atoi(u.Port())
	require.NoError(t, err, "%s: url %s names a port", owner, u)
	require.True(t, slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return int(p.Port) == port }),
		"%s: Service %s has port %d", owner, svc.Name, port)
	m := regexp.MustCompile(`^/api/jobs/([a-z0-9-]+)/work$`).FindStringSubmatch(u.Path)
	require.NotNil(t, m, "%s: url path %s is /api/jobs/NAME/work", owner, u.Path)
	return m[1], target
}

// kedaWorker checks a worker container of an autoscaled workq Job and
// returns the Job it works on.
func (objs *objects) kedaWorker(t *testing.T, owner string, spec corev1.PodSpec, labels map[string]string) string {
	t.Helper()
	require.Len(t, spec.Containers, 1, owner)
	c := spec.Containers[0]
	require.Equal(t, []string{"worker"}, c.Command, owner)
	dash := slices.Index(c.Args, "--")
	require.Positive(t, dash, "%s: worker flags, then -- and the command", owner)
	require.Less(t, dash, len(c.Args)-1, "%s has a command after --", owner)
	require.Contains(t, c.Args[:dash], "--wait", "%s: the worker waits for Redis and its Job by itself", owner)
	objs.requireRedisWiring(t, owner, c)
	e, ok := envVar(c, "WORKQ_JOB")
	require.True(t, ok, "%s names its workq Job in WORKQ_JOB", owner)
	require.Equal(t, e.Value, labels["workq.io/job"], "%s is labelled with its workq Job", owner)
	require.NotNil(t, spec.TerminationGracePeriodSeconds, "%s leaves workers time to hand back their items", owner)
	return e.Value
}

// kedaLoader returns the loader Job that creates the workq Job, and its args.
func (objs *objects) kedaLoader(t *testing.T, owner, job string, maxReplicas int32) []string {
	t.Helper()
	for _, j := range objs.jobs {
		if j.Labels["app.kubernetes.io/component"] != "loader" || j.Labels["workq.io/job"] != job {
			continue
		}
		c := j.Spec.Template.Spec.Containers[0]
		objs.requireRedisWiring(t, "Job "+j.Name, c)
		name, parallelism, args := workqJob(t, c)
		require.Equal(t, job, name, "Job %s creates the workq Job %s", j.Name, job)
		require.Equal(t, strconv.Itoa(int(maxReplicas)), expand(c, parallelism),
			"loader %s creates %s with --parallelism equal to the most workers KEDA runs for it", j.Name, job)
		return args
	}
	require.FailNowf(t, "no loader", "%s: no loader Job creates the workq Job %q", owner, job)
	return nil
}

func TestKEDA(t *testing.T) {
	t.Parallel()
	objs := all(t)
	keda := build(t, kedaDir)
	require.Len(t, keda.scaledJobs, 1, "a ScaledJob recipe")
	require.Len(t, keda.scaledObjects, 1, "a ScaledObject alternative")
	jobs := map[string]string{} // workq Job -> what scales its workers

	for _, sj := range keda.scaledJobs {
		owner := "ScaledJob " + sj.Name
		require.Equal(t, "keda.sh/v1alpha1", sj.APIVersion)
		job, _ := objs.kedaTrigger(t, owner, sj.Spec.Triggers)
		ref := sj.Spec.JobTargetRef
		require.NotNil(t, ref, owner)
		// One worker Pod per Kubernetes Job: KEDA decides how many Jobs run.
		require.Equal(t, int32(1), ptrValue(ref.Parallelism), owner)
		require.Equal(t, int32(1), ptrValue(ref.Completions), owner)
		require.NotNil(t, ref.BackoffLimit, owner)
		require.Contains(t, []corev1.RestartPolicy{corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever}, ref.Template.Spec.RestartPolicy, owner)
		require.Equal(t, job, objs.kedaWorker(t, owner, ref.Template.Spec, ref.Template.Labels), "%s: the trigger reads the work of the workers' Job", owner)
		require.NotNil(t, sj.Spec.MaxReplicaCount, owner)
		require.Positive(t, *sj.Spec.MaxReplicaCount, owner)
		require.LessOrEqual(t, ptrValue(sj.Spec.MinReplicaCount), *sj.Spec.MaxReplicaCount, owner)
		// The default strategy subtracts the running Jobs, which hold leased
		// items that the work still counts.
		if sj.Spec.ScalingStrategy != nil {
			require.Contains(t, []string{"", "default"}, sj.Spec.ScalingStrategy.Strategy, owner)
		}
		args := objs.kedaLoader(t, owner, job, *sj.Spec.MaxReplicaCount)
		require.Contains(t, args, "--seal", "%s: a Job whose workers end is sealed once loaded, or it never drains", owner)
		require.NotContains(t, jobs, job)
		jobs[job] = owner
	}

	for _, so := range keda.scaledObjects {
		owner := "ScaledObject " + so.Name
		require.Equal(t, "keda.sh/v1alpha1", so.APIVersion)
		job, _ := objs.kedaTrigger(t, owner, so.Spec.Triggers)
		ref := so.Spec.ScaleTargetRef
		require.NotNil(t, ref, owner)
		require.Equal(t, "Deployment", ref.Kind, owner)
		require.Equal(t, "apps/v1", ref.APIVersion, owner)
		i := slices.IndexFunc(objs.deployments, func(d *appsv1.Deployment) bool { return d.Name == ref.Name })
		require.GreaterOrEqual(t, i, 0, "%s scales the Deployment %s, which the manifests define", owner, ref.Name)
		d := objs.deployments[i]
		require.Nil(t, d.Spec.Replicas, "Deployment %s leaves replicas to KEDA, so that applying it again does not undo the scaling", d.Name)
		for k, v := range d.Spec.Selector.MatchLabels {
			require.Equal(t, v, d.Spec.Template.Labels[k], "the Deployment selects its own Pods")
		}
		require.Equal(t, job, objs.kedaWorker(t, "Deployment "+d.Name, d.Spec.Template.Spec, d.Spec.Template.Labels), "%s: the trigger reads the work of the workers' Job", owner)
		require.NotNil(t, so.Spec.MaxReplicaCount, owner)
		require.Positive(t, *so.Spec.MaxReplicaCount, owner)
		require.Equal(t, int32(0), ptrValue(so.Spec.MinReplicaCount), "%s scales to zero when there is no work", owner)
		args := objs.kedaLoader(t, owner, job, *so.Spec.MaxReplicaCount)
		require.NotContains(t, args, "--seal", "%s: a Deployment restarts workers that exit, so its Job stays open", owner)
		require.NotContains(t, jobs, job, "each recipe has a workq Job of its own")
		jobs[job] = owner
	}
}

func ptrValue[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
