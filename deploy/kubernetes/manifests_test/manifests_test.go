// Package manifests_test checks the Kubernetes manifests in deploy/kubernetes:
// every document decodes strictly into the real Kubernetes API types (an
// unknown or misspelt field is an error), kustomization.yaml lists every
// manifest, the kustomize build renders what the workq deployment needs, and
// the worker Jobs follow the work-queue pattern.
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
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// dir is deploy/kubernetes, the parent of this module.
const dir = ".."

// objects is every decoded manifest of one rendering, by kind.
type objects struct {
	secrets      []*corev1.Secret
	services     []*corev1.Service
	statefulSets []*appsv1.StatefulSet
	deployments  []*appsv1.Deployment
	jobs         []*batchv1.Job
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

func readKustomization(t *testing.T) kustomization {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	require.NoError(t, err)
	js, err := yaml.YAMLToJSONStrict(data)
	require.NoError(t, err)
	var k kustomization
	require.NoError(t, decodeStrict(js, &k), "kustomization.yaml")
	return k
}

// manifestFiles lists the YAML files of deploy/kubernetes but kustomization.yaml.
func manifestFiles(t *testing.T) []string {
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

// build renders deploy/kubernetes with kustomize, in process, and decodes
// the result strictly.
func build(t *testing.T) *objects {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	abs, err := filepath.Abs(dir)
	require.NoError(t, err)
	resMap, err := k.Run(filesys.MakeFsOnDisk(), abs)
	require.NoError(t, err, "kustomize build")
	out, err := resMap.AsYaml()
	require.NoError(t, err)
	objs := &objects{}
	require.NoError(t, objs.decodeManifests(out), "the kustomize output decodes strictly:\n%s", out)
	return objs
}

func TestEveryManifestDecodesStrictly(t *testing.T) {
	t.Parallel()
	files := manifestFiles(t)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(filepath.Join(dir, f))
			require.NoError(t, err)
			objs := &objects{}
			require.NoError(t, objs.decodeManifests(data))
		})
	}
}

func TestStrictDecodingRefusesUnknownFields(t *testing.T) {
	t.Parallel()
	objs := &objects{}
	err := objs.decodeManifests([]byte("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: x\nspec:\n  paralelism: 3\n"))
	require.ErrorContains(t, err, "paralelism")
	err = objs.decodeManifests([]byte("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: x\n  name: y\n"))
	require.Error(t, err, "a duplicate key is an error")
}

func TestKustomizationListsEveryManifest(t *testing.T) {
	t.Parallel()
	k := readKustomization(t)
	require.Equal(t, "kustomize.config.k8s.io/v1beta1", k.APIVersion)
	require.Equal(t, "Kustomization", k.Kind)
	listed := slices.Clone(k.Resources)
	slices.Sort(listed)
	require.Equal(t, manifestFiles(t), listed, "kustomization.yaml lists every manifest of deploy/kubernetes, and only those")
}

func TestKustomizeBuildSetsImagesInOnePlace(t *testing.T) {
	t.Parallel()
	k := readKustomization(t)
	want := map[string]string{} // image name in the manifests -> rendered image
	for _, img := range k.Images {
		name := img.Name
		if img.NewName != "" {
			name = img.NewName
		}
		require.NotEmpty(t, img.NewTag, "image %s has a tag in kustomization.yaml", img.Name)
		want[img.Name] = name + ":" + img.NewTag
	}
	require.Contains(t, want, "workq")
	require.Contains(t, want, "redis")

	// In the manifests, every image is a bare name that kustomization.yaml sets.
	for _, f := range manifestFiles(t) {
		data, err := os.ReadFile(filepath.Join(dir, f))
		require.NoError(t, err)
		objs := &objects{}
		require.NoError(t, objs.decodeManifests(data))
		for _, c := range objs.containers() {
			name, _, _ := strings.Cut(c.Image, ":")
			require.Contains(t, want, name, "%s: container %s uses image %s, which kustomization.yaml does not set", f, c.Name, c.Image)
		}
	}

	objs := build(t)
	seen := map[string]bool{}
	for _, c := range objs.containers() {
		require.Contains(t, slices.Collect(maps.Values(want)), c.Image, "container %s", c.Name)
		seen[c.Image] = true
		if c.Image == want["workq"] {
			require.Equal(t, corev1.PullIfNotPresent, c.ImagePullPolicy, "container %s", c.Name)
		}
	}
	require.Len(t, seen, 2, "the workq and the Redis image are both used")
}

// containers lists every container and init container of every Pod template.
func (objs *objects) containers() []corev1.Container {
	var out []corev1.Container
	add := func(spec corev1.PodSpec) {
		out = append(out, spec.InitContainers...)
		out = append(out, spec.Containers...)
	}
	for _, s := range objs.statefulSets {
		add(s.Spec.Template.Spec)
	}
	for _, d := range objs.deployments {
		add(d.Spec.Template.Spec)
	}
	for _, j := range objs.jobs {
		add(j.Spec.Template.Spec)
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
	objs := build(t)
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
	objs := build(t)
	require.Len(t, objs.deployments, 1)
	d := objs.deployments[0]
	require.Len(t, d.Spec.Template.Spec.Containers, 1)
	c := d.Spec.Template.Spec.Containers[0]
	require.Equal(t, []string{"coordinator"}, c.Command)
	require.Equal(t, "serve", c.Args[0])
	require.Contains(t, c.Args, ":8080")
	objs.requireRedisWiring(t, "Deployment "+d.Name, c)
	require.NotNil(t, c.ReadinessProbe)
	require.Equal(t, "/healthz", c.ReadinessProbe.HTTPGet.Path)

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
	objs := build(t)
	k := readKustomization(t)

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

func TestPodsRunAsNonRoot(t *testing.T) {
	t.Parallel()
	objs := build(t)
	var specs []corev1.PodSpec
	for _, s := range objs.statefulSets {
		specs = append(specs, s.Spec.Template.Spec)
	}
	for _, d := range objs.deployments {
		specs = append(specs, d.Spec.Template.Spec)
	}
	for _, j := range objs.jobs {
		specs = append(specs, j.Spec.Template.Spec)
	}
	for _, spec := range specs {
		require.NotNil(t, spec.SecurityContext)
		require.NotNil(t, spec.SecurityContext.RunAsNonRoot)
		require.True(t, *spec.SecurityContext.RunAsNonRoot)
		require.NotNil(t, spec.SecurityContext.RunAsUser)
		require.NotZero(t, *spec.SecurityContext.RunAsUser)
		for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
			require.NotNil(t, c.SecurityContext, "container %s", c.Name)
			require.NotNil(t, c.SecurityContext.AllowPrivilegeEscalation, "container %s", c.Name)
			require.False(t, *c.SecurityContext.AllowPrivilegeEscalation, "container %s", c.Name)
		}
	}
}
