//go:build compose

package compose

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The base images of the Dockerfile, by default.
const (
	goBaseImage    = "golang:1.26"
	finalBaseImage = "alpine:3.22"
)

// TestDockerfile builds the repository's Dockerfile and checks its image. Base
// images that the engine lacks are replaced, through the Dockerfile's GO_IMAGE
// and BASE_IMAGE build arguments, by stand-ins made here: the host's Go
// toolchain with the module's dependencies served from a file proxy, and a
// busybox root filesystem.
//
// The build compiles every package from a cold cache inside the builder, which
// takes minutes on a small machine, so the test runs only when asked:
//
//	WORKQ_TEST_DOCKERFILE=1 go test -tags compose -run TestDockerfile -timeout 30m ./test/compose/
func TestDockerfile(t *testing.T) {
	if os.Getenv("WORKQ_TEST_DOCKERFILE") == "" {
		t.Skip("skipping: set WORKQ_TEST_DOCKERFILE=1 to build the Dockerfile (minutes: it compiles everything inside the build)")
	}
	requireDockerEngine(t)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	suffix := strconv.FormatInt(time.Now().UnixNano()%1_000_000_000, 10)
	t.Cleanup(func() {
		// The build stage of a legacy build stays behind as a dangling image;
		// on a stand-in base it carries the test's label.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = run(ctx, "", nil, nil, "docker", "image", "prune", "--force", "--filter", "label="+testLabel)
	})

	ctx, cancel := context.WithTimeout(t.Context(), 25*time.Minute)
	defer cancel()
	goImage, baseImage := goBaseImage, finalBaseImage
	if !imageExists(ctx, goImage) {
		goImage = "workq-test-golang:" + suffix
		importGoImage(t, ctx, root, goImage)
	}
	if !imageExists(ctx, baseImage) {
		baseImage = "workq-test-base:" + suffix
		importBusyboxImage(t, ctx, baseImage)
	}
	t.Logf("base images: %s, %s", goImage, baseImage)

	image := "workq-dockerfile-test:" + suffix
	start := time.Now()
	_, err = run(ctx, root, append(os.Environ(), "DOCKER_BUILDKIT=0"), nil, "docker", "build", "--force-rm",
		"--build-arg", "GO_IMAGE="+goImage, "--build-arg", "BASE_IMAGE="+baseImage,
		"--tag", image, root)
	require.NoError(t, err, "docker build")
	removeImageOnCleanup(t, image)
	t.Logf("built %s in %s", image, time.Since(start).Round(time.Second))

	out, err := run(ctx, "", nil, nil, "docker", "image", "inspect", image)
	require.NoError(t, err)
	var inspect []struct {
		Size   int64
		Config struct {
			User string
			Cmd  []string
		}
	}
	require.NoError(t, json.Unmarshal([]byte(out), &inspect))
	require.Len(t, inspect, 1)
	require.Equal(t, "10001:10001", inspect[0].Config.User, "the image runs as a non-root user")
	t.Logf("image size %.1f MB", float64(inspect[0].Size)/1e6)
	require.Less(t, inspect[0].Size, int64(100e6), "the image is small")

	docker := func(stdin io.Reader, args ...string) string {
		t.Helper()
		out, err := run(ctx, "", nil, stdin, "docker", append([]string{"run", "--rm", "-i", image}, args...)...)
		require.NoError(t, err)
		return out
	}
	require.Equal(t, "10001", strings.TrimSpace(docker(nil, "id", "-u")))
	// Running the binaries in the final stage shows that they are static.
	require.Contains(t, docker(nil, "coordinator", "--help"), "serve")
	require.Contains(t, docker(nil, "worker", "--help"), "--job")
	require.Equal(t, "kaleidoscope: 12 letters\n", docker(strings.NewReader("kaleidoscope\n"), "/usr/share/workq/examples/wordlen.sh"))
	words, err := os.ReadFile(filepath.Join(root, "examples", "words.txt"))
	require.NoError(t, err)
	require.Equal(t, string(words), docker(nil, "cat", "/usr/share/workq/examples/words.txt"))
}

// importGoImage imports a stand-in for the golang image: busybox, the host's
// GOROOT, and the root module's dependencies from the host's module cache,
// served to the build through GOPROXY=file://.
func importGoImage(t *testing.T, ctx context.Context, root, tag string) {
	t.Helper()
	requireDebianFiles(t, map[string]string{hostBusybox: "busybox-static"})
	goroot := strings.TrimSpace(mustRun(t, ctx, root, "go", "env", "GOROOT"))
	modcache := strings.TrimSpace(mustRun(t, ctx, root, "go", "env", "GOMODCACHE"))
	// Every module of the build list, downloaded into the host's cache first.
	mustRun(t, ctx, root, "go", "mod", "download", "all")
	download := filepath.Join(modcache, "cache", "download")

	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := writeBusybox(tw)
		if err == nil {
			err = addDirs(tw, map[string]int64{"usr/local": 0o755})
		}
		if err == nil {
			err = addTree(tw, goroot, "usr/local/go", func(rel string) bool {
				return rel == "test" || rel == "doc" || rel == "api" || strings.HasPrefix(rel, "pkg/tool/") && !strings.HasPrefix(rel, "pkg/tool/linux_amd64")
			})
		}
		if err == nil {
			err = addTree(tw, download, "goproxy", nil)
		}
		if err == nil {
			err = addDirs(tw, map[string]int64{"go": 0o777, "tmp": 0o1777})
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	_, err := run(ctx, "", nil, pr, "docker", "import",
		"--change", "ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"--change", "ENV GOPATH=/go",
		"--change", "ENV GOTOOLCHAIN=local",
		"--change", "ENV GOPROXY=file:///goproxy",
		"--change", "ENV GOSUMDB=off",
		"--change", "ENV HOME=/tmp",
		"--change", "LABEL "+testLabel,
		"--change", "WORKDIR /go",
		"-", tag)
	require.NoError(t, err, "importing %s", tag)
	removeImageOnCleanup(t, tag)
}

// importBusyboxImage imports a stand-in for the final base image: busybox
// with /bin/sh and a root user.
func importBusyboxImage(t *testing.T, ctx context.Context, tag string) {
	t.Helper()
	requireDebianFiles(t, map[string]string{hostBusybox: "busybox-static"})
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := writeBusybox(tw)
		if err == nil {
			err = addDirs(tw, map[string]int64{"etc": 0o755, "tmp": 0o1777})
		}
		for name, data := range map[string]string{
			"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n",
			"etc/group":  "root:x:0:\nnobody:x:65534:\n",
		} {
			if err == nil {
				err = addBytes(tw, name, []byte(data), 0o644)
			}
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	_, err := run(ctx, "", nil, pr, "docker", "import",
		"--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"--change", "LABEL "+testLabel,
		"--change", `CMD ["/bin/sh"]`,
		"-", tag)
	require.NoError(t, err, "importing %s", tag)
	removeImageOnCleanup(t, tag)
}

func mustRun(t *testing.T, ctx context.Context, dir, name string, args ...string) string {
	t.Helper()
	out, err := run(ctx, dir, nil, nil, name, args...)
	require.NoError(t, err)
	return out
}

// writeBusybox writes /bin/busybox and a symlink per applet into tw.
func writeBusybox(tw *tar.Writer) error {
	data, err := os.ReadFile(hostBusybox)
	if err != nil {
		return err
	}
	if err := addDirs(tw, map[string]int64{"bin": 0o755, "sbin": 0o755, "usr": 0o755, "usr/bin": 0o755}); err != nil {
		return err
	}
	if err := addBytes(tw, "bin/busybox", data, 0o755); err != nil {
		return err
	}
	out, err := run(context.Background(), "", nil, nil, hostBusybox, "--list")
	if err != nil {
		return err
	}
	for _, applet := range strings.Fields(out) {
		if applet == "busybox" {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777}); err != nil {
			return err
		}
	}
	return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "sbin/nologin", Linkname: "/bin/busybox", Mode: 0o777})
}

func addDirs(tw *tar.Writer, dirs map[string]int64) error {
	for name, mode := range dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: time.Now()}); err != nil {
			return err
		}
	}
	return nil
}

func addBytes(tw *tar.Writer, name string, data []byte, mode int64) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: time.Now()}); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

// addTree writes the tree at src into tw under prefix, skipping the paths
// (relative to src, slash-separated) that skip accepts.
func addTree(tw *tar.Writer, src, prefix string, skip func(rel string) bool) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel != "." && skip != nil && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		name := prefix
		if rel != "." {
			name = prefix + "/" + rel
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: int64(info.Mode().Perm()), ModTime: info.ModTime()})
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777})
		case info.Mode().IsRegular():
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(info.Mode().Perm()), Size: info.Size(), ModTime: info.ModTime()}); err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			return err
		default:
			return fmt.Errorf("%s: unsupported file type %s", path, info.Mode().Type())
		}
	})
}
