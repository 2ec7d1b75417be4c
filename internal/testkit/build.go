package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Bins are the paths of the real binaries.
type Bins struct {
	Coordinator string
	Worker      string
}

// BuildOptions say how Build builds the binaries. The zero value is a
// plain build.
type BuildOptions struct {
	// Race builds the binaries with the race detector, so that a race in
	// them fails the process under test. Slower. Default false.
	Race bool
}

// suite is the one build of a test binary. It is package state because a
// test binary is one process: Main sets it up before any test runs, the
// first Build builds, and Main removes the binaries after the last test.
var suite struct {
	mu    sync.Mutex
	main  bool // Main runs the tests: it removes dir at the end
	opts  BuildOptions
	built bool
	dir   string
	bins  Bins
	err   error
}

// Main is a suite's TestMain body: it runs the tests (Build uses opts),
// stops the server that SharedRedis started, removes the binaries that
// Build made and exits with the tests' code.
func Main(m *testing.M, opts BuildOptions) {
	suite.mu.Lock()
	suite.main, suite.opts = true, opts
	suite.mu.Unlock()
	code := m.Run()
	stopShared()
	suite.mu.Lock()
	if suite.dir != "" {
		if err := os.RemoveAll(suite.dir); err != nil {
			fmt.Fprintln(os.Stderr, "testkit:", err)
		}
	}
	suite.mu.Unlock()
	os.Exit(code)
}

// Build returns the binaries cmd/coordinator and cmd/worker. The first
// call builds them into a temporary directory, with the options given to
// Main; later calls (from any test, at once or not) return the same paths,
// or fail their test with the same build error. It fails the test when the
// suite's TestMain is not Main, which removes the binaries at the end.
func Build(t testing.TB) Bins {
	t.Helper()
	suite.mu.Lock()
	defer suite.mu.Unlock()
	if !suite.main {
		t.Fatal("testkit.Build needs testkit.Main as the suite's TestMain: func TestMain(m *testing.M) { testkit.Main(m, testkit.BuildOptions{}) }")
	}
	if !suite.built {
		suite.built = true
		suite.dir, suite.bins, suite.err = build(suite.opts)
	}
	if suite.err != nil {
		t.Fatal(suite.err)
	}
	return suite.bins
}

func build(opts BuildOptions) (dir string, bins Bins, err error) {
	dir, err = os.MkdirTemp("", "workq-test-bin-*")
	if err != nil {
		return "", Bins{}, fmt.Errorf("build the binaries: %w", err)
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	if opts.Race {
		args = append(args, "-race")
	}
	args = append(args, "github.com/workq/workq/cmd/coordinator", "github.com/workq/workq/cmd/worker")
	cmd := exec.Command("go", args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return dir, Bins{}, fmt.Errorf("build the binaries: go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return dir, Bins{Coordinator: filepath.Join(dir, "coordinator"), Worker: filepath.Join(dir, "worker")}, nil
}
