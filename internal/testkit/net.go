package testkit

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// httpTimeout bounds one request of HTTP.
const httpTimeout = 10 * time.Second

// FreeAddr returns a loopback address (127.0.0.1:PORT) that was free a
// moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// HTTP sends one request with no body, with "Authorization: Bearer TOKEN"
// when token is set, and returns the status code and the body. err is set
// when no whole answer came within 10s.
func HTTP(method, url, token string) (code int, body string, err error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: httpTimeout}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// WaitHealthy waits up to 30s until `coordinator serve` at addr answers
// GET /healthz with 200 "ok"; otherwise it fails the test with the last
// answer and serve's output.
func WaitHealthy(t testing.TB, addr string, serve *Proc) {
	t.Helper()
	waitHealthy(t, addr, serve, 30*time.Second)
}

func waitHealthy(t testing.TB, addr string, serve *Proc, timeout time.Duration) {
	t.Helper()
	Eventually(t, timeout, "http://"+addr+"/healthz answers 200 ok", func() (bool, string) {
		code, body, err := HTTP(http.MethodGet, "http://"+addr+"/healthz", "")
		if err == nil && code == http.StatusOK && body == "ok\n" {
			return true, ""
		}
		var b strings.Builder
		if err != nil {
			b.WriteString(err.Error())
		} else {
			b.WriteString(http.StatusText(code) + ": " + body)
		}
		b.WriteString("\n" + serve.String())
		return false, b.String()
	})
}
