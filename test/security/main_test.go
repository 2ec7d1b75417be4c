// Package security_test checks workq's security properties with the real
// binaries: a least-privilege Redis ACL user, TLS with a private CA,
// passwords kept out of every output, item bytes never interpreted, and an
// HTTP server that is read-only without a token.
package security_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/redistest"
	"github.com/workq/workq/test/faults/harness"
)

var bins harness.Bins

func TestMain(m *testing.M) { harness.Main(m, "security", &bins) }

// cli runs commands against one Redis URL and keeps everything they wrote.
type cli struct {
	t   *testing.T
	env []string
	all strings.Builder // every stdout and stderr, for greps
}

func newCLI(t *testing.T, env ...string) *cli { return &cli{t: t, env: harness.Env(env...)} }

// run runs a binary and requires the exit code.
func (c *cli) run(code int, bin string, args ...string) harness.Result {
	c.t.Helper()
	return c.runIn(code, nil, bin, args...)
}

func (c *cli) runIn(code int, stdin io.Reader, bin string, args ...string) harness.Result {
	c.t.Helper()
	r := harness.Run(c.t, 2*time.Minute, c.env, stdin, bin, args...)
	c.all.WriteString(r.Stdout + r.Stderr)
	require.Equal(c.t, code, r.Code, "%s %v: %s", bin, args, r)
	return r
}

// start starts a background process with the cli's environment.
func (c *cli) start(name, bin string, args ...string) *harness.Proc {
	c.t.Helper()
	return harness.Start(c.t, name, c.env, bin, args...)
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	p, err := redistest.FreePort()
	require.NoError(t, err)
	return "127.0.0.1:" + strconv.Itoa(p)
}

// get fetches a URL and returns the status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	return do(t, http.MethodGet, url, "")
}

func do(t *testing.T, method, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// waitHTTP waits until serve answers /healthz with 200.
func waitHTTP(t *testing.T, addr string, p *harness.Proc) {
	t.Helper()
	harness.Eventually(t, 30*time.Second, "serve answers", func() (bool, string) {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false, err.Error() + "\n" + p.Output()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status + "\n" + p.Output()
	})
}

// tryGet fetches a URL; err is set when nothing answered.
func tryGet(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}
