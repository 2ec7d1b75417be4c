//go:build compose

package compose

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testLabel marks the stand-in base images that TestDockerfile makes, so
// that they are easy to find.
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
		t.Skipf("skipping: the stand-in base images need Debian packages %s; install them with `apt-get install %s` (the test installs them itself only as root with CI=true)",
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

// buildScript makes the images that docker-compose.yml runs: the same
// script that the README tells users without a registry to run.
const buildScript = "deploy/docker/build-images.sh"

// buildImages runs the build script for the two tags and removes the images
// when the test ends. The script installs missing Debian packages itself
// only when the test runs as root with CI=true; otherwise (exit code 3) the
// test skips, saying what to install. It returns the script's output.
func buildImages(t *testing.T, root, workqTag, redisTag string) string {
	t.Helper()
	var args []string
	if os.Geteuid() != 0 || os.Getenv("CI") != "true" {
		args = append(args, "--no-apt")
	}
	out, err := runBuildScript(t, root, workqTag, redisTag, args...)
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 3 {
		t.Skipf("skipping: %s needs Debian packages (it installs them itself only as root with CI=true): %s", buildScript, strings.TrimSpace(out))
	}
	require.NoError(t, err)
	removeImageOnCleanup(t, workqTag)
	removeImageOnCleanup(t, redisTag)
	return out
}

// runBuildScript runs the build script with the image tags in its environment.
func runBuildScript(t *testing.T, root, workqTag, redisTag string, args ...string) (string, error) {
	t.Helper()
	// Generous: a cold build cache on a busy 2-core machine takes minutes.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	env := append(os.Environ(), "WORKQ_IMAGE="+workqTag, "WORKQ_REDIS_IMAGE="+redisTag)
	return run(ctx, root, env, nil, filepath.Join(root, buildScript), args...)
}
