package security_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/redistest"
	"github.com/workq/workq/internal/testkit"
)

const (
	secretPassword = "pw-Very-Secret-7731"
	wrongPassword  = "pw-Wrong-Guess-0042"
)

// TestPasswordsNeverShown runs both binaries with the password in the URL,
// in WORKQ_REDIS_PASSWORD, wrong, and against an unreachable host, and
// greps every stdout, stderr, log line, HTTP page and metric for it.
func TestPasswordsNeverShown(t *testing.T) {
	redistest.Available(t)
	srv := redistest.ForTest(t, "--requirepass", secretPassword)
	bins := testkit.Build(t)
	co, wk := bins.Coordinator, bins.Worker
	inURL := "redis://:" + secretPassword + "@" + srv.Addr + "/0"
	withUser := "redis://default:" + secretPassword + "@" + srv.Addr + "/0"
	wrongURL := "redis://:" + wrongPassword + "@" + srv.Addr + "/0"
	var outputs strings.Builder

	t.Run("PasswordInTheURL", func(t *testing.T) {
		c := newCLI(t, "WORKQ_REDIS_URL="+inURL)
		c.run(0, co, "create", "sec")
		c.run(0, co, "push", "sec", "a", "b", "fail", "--seal")
		c.run(0, co, "list")
		c.run(0, co, "list", "-o", "json")
		c.run(0, co, "status", "sec")
		c.run(0, co, "status", "sec", "-o", "json")
		c.run(1, wk, "--job", "sec", "--log-level", "debug", "--", "sh", "-c", `test "$1" != fail`, "sh", "{}") // an item is dead: Failed
		c.run(0, co, "dead", "sec")
		c.run(0, co, "dead", "sec", "-o", "json")
		c.run(0, co, "--redis", withUser, "status", "sec")
		c.runIn(0, strings.NewReader("x\ny\n"), co, "run", "--redis", inURL, "--job", "sec-run", "-p", "2", "--", "cat")

		addr := testkit.FreeAddr(t)
		serve := c.start("serve", co, "serve", "--listen", addr, "--interval", "50ms", "--log-level", "debug", "--token", "tok")
		testkit.WaitHealthy(t, addr, serve)
		c.run(1, co, "watch", "sec", "--interval", "50ms") // an item is dead: Failed
		for _, path := range []string{"/", "/jobs/sec", "/api/jobs", "/api/jobs/sec", "/metrics", "/healthz"} {
			code, body := get(t, "http://"+addr+path)
			require.Equal(t, 200, code, path)
			c.all.WriteString(body)
		}
		c.stop(serve)
		outputs.WriteString(c.all.String())
	})

	t.Run("PasswordInTheEnvironment", func(t *testing.T) {
		c := newCLI(t, "WORKQ_REDIS_URL=redis://"+srv.Addr+"/0", "WORKQ_REDIS_PASSWORD="+secretPassword)
		c.run(0, co, "create", "sec-env")
		c.run(0, co, "push", "sec-env", "a", "--seal")
		c.run(0, wk, "--job", "sec-env", "--log-level", "debug", "--", "cat")
		c.run(0, co, "watch", "sec-env", "--interval", "50ms")
		outputs.WriteString(c.all.String())
	})

	t.Run("WrongPassword", func(t *testing.T) {
		c := newCLI(t, "WORKQ_REDIS_URL="+wrongURL)
		r := c.run(1, co, "status", "sec")
		require.Contains(t, r.Stderr, "authentication failed")
		c.run(1, wk, "--job", "sec", "--wait", "300ms", "--log-level", "debug", "--", "cat")
		env := newCLI(t, "WORKQ_REDIS_URL=redis://"+srv.Addr+"/0", "WORKQ_REDIS_PASSWORD="+wrongPassword)
		env.run(1, co, "list")
		addr := testkit.FreeAddr(t)
		serve := c.start("serve", co, "serve", "--listen", addr, "--log-level", "debug")
		unhealthy(t, addr)
		_, body := get(t, "http://"+addr+"/metrics")
		c.all.WriteString(body)
		c.stop(serve)
		outputs.WriteString(c.all.String() + env.all.String())
	})

	t.Run("UnreachableHostOrBadURL", func(t *testing.T) {
		c := newCLI(t, "WORKQ_REDIS_URL=redis://:"+secretPassword+"@127.0.0.1:1/0")
		r := c.run(1, co, "status", "sec")
		require.Contains(t, r.Stderr, "redis unavailable")
		c.run(1, wk, "--job", "sec", "--wait", "300ms", "--", "cat")
		c.run(2, co, "--redis", "redis://:"+secretPassword+"@127.0.0.1:notaport/0", "list")
		c.run(2, co, "--redis", "http://u:"+secretPassword+"@127.0.0.1/0", "list")
		c.run(2, co, "--redis", "redis://u:"+secretPassword+"@[::1/0", "list")
		outputs.WriteString(c.all.String())
	})

	require.NotEmpty(t, outputs.String())
	require.NotContains(t, outputs.String(), secretPassword)
	require.NotContains(t, outputs.String(), wrongPassword)
}

// unhealthy waits until serve answers and requires that it says Redis is
// unavailable.
func unhealthy(t *testing.T, addr string) {
	t.Helper()
	code := 0
	testkit.Eventually(t, 30*time.Second, "serve answers", func() (bool, string) {
		c, _, err := testkit.HTTP(http.MethodGet, "http://"+addr+"/healthz", "")
		code = c
		return err == nil, fmt.Sprint(err)
	})
	require.Equal(t, http.StatusServiceUnavailable, code, "healthz with a wrong password")
}
