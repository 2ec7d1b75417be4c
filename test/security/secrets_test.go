package security_test

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/redistest"
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
		c.run(0, wk, "--job", "sec", "--log-level", "debug", "--", "sh", "-c", `test "$1" != fail`, "sh", "{}")
		c.run(0, co, "dead", "sec")
		c.run(0, co, "dead", "sec", "-o", "json")
		c.run(0, co, "--redis", withUser, "status", "sec")
		c.runIn(0, strings.NewReader("x\ny\n"), co, "run", "--redis", inURL, "--job", "sec-run", "-p", "2", "--", "cat")

		addr := freeAddr(t)
		serve := c.start("serve", co, "serve", "--listen", addr, "--interval", "50ms", "--log-level", "debug", "--token", "tok")
		waitHTTP(t, addr, serve)
		c.run(1, co, "watch", "sec", "--interval", "50ms") // an item is dead: Failed
		for _, path := range []string{"/", "/jobs/sec", "/api/jobs", "/api/jobs/sec", "/metrics", "/healthz"} {
			code, body := get(t, "http://"+addr+path)
			require.Equal(t, 200, code, path)
			c.all.WriteString(body)
		}
		require.NoError(t, serve.Signal(syscall.SIGTERM))
		serve.Wait(t, 30*time.Second)
		c.all.WriteString(serve.Output())
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
		addr := freeAddr(t)
		serve := c.start("serve", co, "serve", "--listen", addr, "--log-level", "debug")
		harness503(t, addr)
		_, body := get(t, "http://"+addr+"/metrics")
		c.all.WriteString(body)
		require.NoError(t, serve.Signal(syscall.SIGTERM))
		serve.Wait(t, 30*time.Second)
		c.all.WriteString(serve.Output())
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

// harness503 waits until serve answers and says Redis is unavailable.
func harness503(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		code, _, err := tryGet("http://" + addr + "/healthz")
		if err == nil {
			require.Equal(t, 503, code, "healthz with a wrong password")
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("serve did not answer")
}
