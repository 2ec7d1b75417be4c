package security_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/redistest"
	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

// TestHTTPChangesNeedTheToken checks serve's HTTP surface: read-only
// without --token; with it, changes need "Authorization: Bearer TOKEN";
// /healthz and /metrics are GET-only; a client that never finishes its
// request headers is cut off.
func TestHTTPChangesNeedTheToken(t *testing.T) {
	redistest.Available(t)
	srv := redistest.ForTest(t)
	c := newCLI(t, "WORKQ_REDIS_URL="+srv.URL())
	co := testkit.Build(t).Coordinator
	c.run(0, co, "create", "web")
	qc, err := queue.Open(context.Background(), queue.Options{URL: srv.URL()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = qc.Close() })
	phase := func() jobstate.Phase {
		s, err := qc.Inspector().Status(context.Background(), "web")
		require.NoError(t, err)
		return s.Phase
	}
	changes := []struct{ method, path string }{
		{"POST", "/api/jobs/web/suspend"}, {"POST", "/api/jobs/web/resume"}, {"POST", "/api/jobs/web/retry"}, {"DELETE", "/api/jobs/web"},
	}

	t.Run("ReadOnlyWithoutToken", func(t *testing.T) {
		addr := testkit.FreeAddr(t)
		p := c.start("serve", co, "serve", "--listen", addr)
		testkit.WaitHealthy(t, addr, p)
		for _, ch := range changes {
			code, body := do(t, ch.method, "http://"+addr+ch.path, "")
			require.Equal(t, http.StatusForbidden, code, "%s %s: %s", ch.method, ch.path, body)
			code, _ = do(t, ch.method, "http://"+addr+ch.path, "any-guess")
			require.Equal(t, http.StatusForbidden, code, "no token configured: no token works")
		}
		require.Equal(t, jobstate.PhasePending, phase(), "the Job is unchanged")
		for _, path := range []string{"/healthz", "/metrics"} {
			code, _ := get(t, "http://"+addr+path)
			require.Equal(t, 200, code)
			for _, m := range []string{"POST", "PUT", "DELETE", "PATCH"} {
				// Only GET reaches the handler; the dashboard's catch-all
				// answers other methods with 404 (or 405).
				code, body := do(t, m, "http://"+addr+path, "")
				require.Contains(t, []int{http.StatusNotFound, http.StatusMethodNotAllowed}, code, "%s %s: %s", m, path, body)
				require.NotContains(t, body, "ok\n")
				require.NotContains(t, body, "# HELP")
			}
		}
	})

	t.Run("ChangesNeedTheRightToken", func(t *testing.T) {
		addr := testkit.FreeAddr(t)
		p := c.start("serve-token", co, "serve", "--listen", addr, "--token", "right-token")
		testkit.WaitHealthy(t, addr, p)
		code, _ := do(t, "POST", "http://"+addr+"/api/jobs/web/suspend", "")
		require.Equal(t, http.StatusUnauthorized, code)
		code, _ = do(t, "POST", "http://"+addr+"/api/jobs/web/suspend", "wrong-token")
		require.Equal(t, http.StatusForbidden, code)
		require.Equal(t, jobstate.PhasePending, phase())
		code, body := do(t, "POST", "http://"+addr+"/api/jobs/web/suspend", "right-token")
		require.Equal(t, http.StatusOK, code, body)
		require.Equal(t, jobstate.PhaseSuspended, phase())
		require.NotContains(t, p.Output(), "right-token", "the token is not logged")
	})

	t.Run("SlowHeadersAreCutOff", func(t *testing.T) {
		addr := testkit.FreeAddr(t)
		p := c.start("serve-slow", co, "serve", "--listen", addr)
		testkit.WaitHealthy(t, addr, p)
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer conn.Close()
		_, err = io.WriteString(conn, "GET /api/jobs HTTP/1.1\r\nHost: x\r\n") // never ends the headers
		require.NoError(t, err)
		start := time.Now()
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(20*time.Second)))
		rest, err := io.ReadAll(conn)
		require.NoError(t, err, "the server closes the connection (read %q)", rest)
		require.Less(t, time.Since(start), 15*time.Second, "within the header timeout")
		require.False(t, strings.Contains(string(rest), "200 OK"))
	})
}
