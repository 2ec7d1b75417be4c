//go:build compose

package compose

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The Redis image tag that docker-compose.yml uses by default. When it is not
// present locally, the test makes one from Debian's redis-server.
const redisImage = "redis:7-alpine"

// testLabel marks the images this test makes, so that they are easy to find.
const testLabel = "io.workq.compose-test=1"

// hostBusybox is Debian's static busybox (package busybox-static).
const hostBusybox = "/bin/busybox"

// run runs a command and returns its combined output; the error includes it.
func run(ctx context.Context, dir string, env []string, stdin io.Reader, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = env
	}
	cmd.Stdin = stdin
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// requireDockerEngine skips the test when no Docker engine answers.
func requireDockerEngine(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("skipping: the docker command is not installed")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if out, err := run(ctx, "", nil, nil, "docker", "version", "--format", "{{.Server.Version}}"); err != nil {
		t.Skipf("skipping: no Docker engine answers (docker version: %v): %s", err, strings.TrimSpace(out))
	}
}

// composeCommand returns the Compose tool: `docker compose` (v2) when it
// answers, else `docker-compose`. WORKQ_TEST_COMPOSE ("docker compose" or
// "docker-compose") picks one.
func composeCommand(t *testing.T) []string {
	t.Helper()
	if c := os.Getenv("WORKQ_TEST_COMPOSE"); c != "" {
		return strings.Fields(c)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := run(ctx, "", nil, nil, "docker", "compose", "version"); err == nil {
		return []string{"docker", "compose"}
	}
	if _, err := exec.LookPath("docker-compose"); err == nil {
		return []string{"docker-compose"}
	}
	t.Skip("skipping: neither `docker compose` nor `docker-compose` is installed")
	return nil
}

var aptUpdate sync.Once

// requireDebianFiles makes sure each file exists, installing its Debian package
// when the test runs as root under CI; otherwise it skips with what to install.
func requireDebianFiles(t *testing.T, fileToPackage map[string]string) {
	t.Helper()
	var missing []string
	for file, pkg := range fileToPackage {
		if _, err := os.Stat(file); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) == 0 {
		return
	}
	sort.Strings(missing)
	if os.Geteuid() != 0 || os.Getenv("CI") != "true" {
		t.Skipf("skipping: the test images need Debian packages %s; install them with `apt-get install %s` (the test installs them itself only as root with CI=true)",
			strings.Join(missing, ", "), strings.Join(missing, " "))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	aptUpdate.Do(func() {
		_, err := run(ctx, "", env, nil, "apt-get", "update")
		require.NoError(t, err)
	})
	_, err := run(ctx, "", env, nil, "apt-get", append([]string{"install", "-y", "--no-install-recommends"}, missing...)...)
	require.NoError(t, err, "installing %s", strings.Join(missing, " "))
	for file, pkg := range fileToPackage {
		_, err := os.Stat(file)
		require.NoError(t, err, "package %s should provide %s", pkg, file)
	}
}

// imageExists reports whether the local engine has an image with this tag.
func imageExists(ctx context.Context, tag string) bool {
	_, err := run(ctx, "", nil, nil, "docker", "image", "inspect", "--format", "{{.Id}}", tag)
	return err == nil
}

// removeImageOnCleanup removes the tag when the test ends.
func removeImageOnCleanup(t *testing.T, tag string) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := run(ctx, "", nil, nil, "docker", "image", "rm", "--force", tag); err != nil {
			t.Logf("removing image %s: %v: %s", tag, err, out)
		}
	})
}

// buildWorkqImage builds the project image FROM scratch around static binaries
// built on the host, a static busybox for /bin/sh and the example files: the
// same layout as the Dockerfile's image, without pulling its base images.
func buildWorkqImage(t *testing.T, root, tag string) {
	t.Helper()
	requireDebianFiles(t, map[string]string{hostBusybox: "busybox-static"})
	// Generous: a cold build cache on a busy 2-core machine takes minutes.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()

	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	binDir := filepath.Join(rootfs, "usr", "local", "bin")
	require.NoError(t, os.MkdirAll(binDir, 0o755))
	env := append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	_, err := run(ctx, root, env, nil, "go", "build", "-trimpath", "-ldflags", "-s -w",
		"-o", binDir+string(os.PathSeparator), "./cmd/coordinator", "./cmd/worker")
	require.NoError(t, err, "building the binaries")

	// /bin/busybox and a symlink per applet: sh, sleep, printf, cat, ...
	bin := filepath.Join(rootfs, "bin")
	require.NoError(t, os.MkdirAll(bin, 0o755))
	copyFile(t, hostBusybox, filepath.Join(bin, "busybox"), 0o755)
	out, err := run(ctx, "", nil, nil, hostBusybox, "--list")
	require.NoError(t, err)
	for _, applet := range strings.Fields(out) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		require.NoError(t, os.Symlink("busybox", filepath.Join(bin, applet)))
	}
	require.NoError(t, os.MkdirAll(filepath.Join(rootfs, "sbin"), 0o755))
	require.NoError(t, os.Symlink("/bin/busybox", filepath.Join(rootfs, "sbin", "nologin")))

	examples := filepath.Join(rootfs, "usr", "share", "workq", "examples")
	require.NoError(t, os.MkdirAll(examples, 0o755))
	copyFile(t, filepath.Join(root, "examples", "words.txt"), filepath.Join(examples, "words.txt"), 0o644)
	copyFile(t, filepath.Join(root, "examples", "wordlen.sh"), filepath.Join(examples, "wordlen.sh"), 0o755)

	etc := filepath.Join(rootfs, "etc")
	require.NoError(t, os.MkdirAll(etc, 0o755))
	writeFile(t, filepath.Join(etc, "passwd"), "root:x:0:0:root:/root:/bin/sh\nworkq:x:10001:10001:workq:/nonexistent:/sbin/nologin\n", 0o644)
	writeFile(t, filepath.Join(etc, "group"), "root:x:0:\nworkq:x:10001:\n", 0o644)
	tmp := filepath.Join(rootfs, "tmp")
	require.NoError(t, os.MkdirAll(tmp, 0o755))
	require.NoError(t, os.Chmod(tmp, 0o777|os.ModeSticky))

	// The same user, paths and default command as the Dockerfile's final stage.
	writeFile(t, filepath.Join(dir, "Dockerfile"), `FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/bin:/usr/bin:/bin
LABEL `+testLabel+`
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080 9090
CMD ["coordinator", "--help"]
`, 0o644)
	_, err = run(ctx, dir, append(os.Environ(), "DOCKER_BUILDKIT=0"), nil, "docker", "build", "--quiet", "--force-rm", "--tag", tag, dir)
	require.NoError(t, err, "building image %s", tag)
	removeImageOnCleanup(t, tag)
}

// ensureRedisImage makes the Redis image that docker-compose.yml names when the
// engine does not have it: `docker import` of a root filesystem holding
// Debian's redis-server and redis-cli, their shared libraries and the dynamic
// loader. An image that is already there, real or made before, is used as is.
func ensureRedisImage(t *testing.T, tag string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	if imageExists(ctx, tag) {
		t.Logf("using the local image %s", tag)
		return
	}
	requireDebianFiles(t, map[string]string{
		"/usr/bin/redis-server": "redis-server",
		"/usr/bin/redis-cli":    "redis-tools",
	})

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	added := map[string]bool{}
	addDir := func(name string, mode int64) {
		for _, d := range parents(name) {
			if added[d] {
				continue
			}
			added[d] = true
			m := int64(0o755)
			if d == name {
				m = mode
			}
			require.NoError(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: m, ModTime: time.Now()}))
		}
	}
	addFile := func(name string, data []byte, mode int64) {
		addDir(filepath.Dir(name), 0o755)
		require.NoError(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: time.Now()}))
		_, err := tw.Write(data)
		require.NoError(t, err)
	}
	addHostFile := func(hostPath, name string) {
		real, err := filepath.EvalSymlinks(hostPath)
		require.NoError(t, err)
		data, err := os.ReadFile(real)
		require.NoError(t, err)
		addFile(name, data, 0o755)
	}

	// redis-server is a symlink to redis-check-rdb on Debian; the binary picks
	// its role from argv[0], so a copy named redis-server is the server.
	libs := map[string]bool{}
	for _, binary := range []string{"/usr/bin/redis-server", "/usr/bin/redis-cli"} {
		addHostFile(binary, strings.TrimPrefix(binary, "/"))
		for _, lib := range sharedLibraries(t, ctx, binary) {
			libs[lib] = true
		}
	}
	for lib := range libs {
		addHostFile(lib, strings.TrimPrefix(lib, "/"))
	}
	addFile("etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\nredis:x:999:999:redis:/data:/sbin/nologin\n"), 0o644)
	addFile("etc/group", []byte("root:x:0:\nredis:x:999:\n"), 0o644)
	addDir("data", 0o755)
	addDir("tmp", 0o1777)
	require.NoError(t, tw.Close())

	_, err := run(ctx, "", nil, &buf, "docker", "import",
		"--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"--change", "WORKDIR /data",
		"--change", "LABEL "+testLabel,
		"--change", "EXPOSE 6379",
		"--change", `CMD ["redis-server"]`,
		"-", tag)
	require.NoError(t, err, "importing %s", tag)
	removeImageOnCleanup(t, tag)
}

var lddPath = regexp.MustCompile(`(?m)(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)`)

// sharedLibraries lists the absolute paths of the libraries (and the dynamic
// loader) that ldd reports for binary.
func sharedLibraries(t *testing.T, ctx context.Context, binary string) []string {
	t.Helper()
	out, err := run(ctx, "", nil, nil, "ldd", binary)
	require.NoError(t, err)
	var libs []string
	for _, m := range lddPath.FindAllStringSubmatch(out, -1) {
		libs = append(libs, m[1])
	}
	require.NotEmpty(t, libs, "ldd %s printed no libraries:\n%s", binary, out)
	return libs
}

// parents returns "a", "a/b", "a/b/c" for "a/b/c".
func parents(dir string) []string {
	dir = strings.Trim(filepath.ToSlash(dir), "/")
	if dir == "" || dir == "." {
		return nil
	}
	var out []string
	parts := strings.Split(dir, "/")
	for i := range parts {
		out = append(out, strings.Join(parts[:i+1], "/"))
	}
	return out
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(from)
	require.NoError(t, err)
	writeFile(t, to, string(data), mode)
}

func writeFile(t *testing.T, name, data string, mode os.FileMode) {
	t.Helper()
	require.NoError(t, os.WriteFile(name, []byte(data), mode))
	require.NoError(t, os.Chmod(name, mode)) // the umask does not apply
}
