// Package security_test checks workq's security properties with the real
// binaries: a least-privilege Redis ACL user, TLS with a private CA,
// passwords kept out of every output, item bytes never interpreted, and an
// HTTP server that is read-only without a token.
package security_test

import (
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m, testkit.BuildOptions{}) }

// cli runs commands against one Redis URL and keeps everything they wrote.
type cli struct {
	t   *testing.T
	env []string
	all strings.Builder // every stdout and stderr, for greps
}

func newCLI(t *testing.T, env ...string) *cli { return &cli{t: t, env: env} }

// run runs a binary and requires the exit code.
func (c *cli) run(code int, bin string, args ...string) testkit.Result {
	c.t.Helper()
	return c.runIn(code, nil, bin, args...)
}

func (c *cli) runIn(code int, stdin io.Reader, bin string, args ...string) testkit.Result {
	c.t.Helper()
	r := testkit.Run(c.t, 2*time.Minute, testkit.Command{Bin: bin, Args: args, Env: c.env, Stdin: stdin})
	c.all.WriteString(r.Stdout + r.Stderr)
	require.Equal(c.t, code, r.Code, "%s %v: %s", bin, args, r)
	return r
}

// start starts a background process with the cli's environment.
func (c *cli) start(name, bin string, args ...string) *testkit.Proc {
	c.t.Helper()
	return testkit.Start(c.t, testkit.Command{Name: name, Bin: bin, Args: args, Env: c.env})
}

// stop stops a process started by start with SIGTERM, waits for it and
// keeps what it wrote.
func (c *cli) stop(p *testkit.Proc) {
	c.t.Helper()
	p.Signal(c.t, syscall.SIGTERM)
	p.Wait(c.t, 30*time.Second)
	c.all.WriteString(p.Output())
}

// get fetches a URL and returns the status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	return do(t, http.MethodGet, url, "")
}

// do sends a request, with the token when it is set.
func do(t *testing.T, method, url, token string) (int, string) {
	t.Helper()
	code, body, err := testkit.HTTP(method, url, token)
	require.NoError(t, err, "%s %s", method, url)
	return code, body
}
