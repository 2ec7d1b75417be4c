package testkit

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strconv"
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

// ListenPorts returns the TCP ports (IPv4 and IPv6) that process pid
// listens on, from /proc (Linux only): the listening sockets of
// /proc/net/tcp{,6} whose inode is one of the process's file descriptors.
// It finds the port of a server a process started for itself, such as the
// embedded Redis of `coordinator run`.
func ListenPorts(pid int) ([]int, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, fmt.Errorf("listen ports of %d: %w", pid, err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if ino, ok := strings.CutPrefix(link, "socket:["); ok {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	var ports []int
	for _, table := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if errors.Is(err, fs.ErrNotExist) {
			continue // no IPv6
		}
		if err != nil {
			return nil, fmt.Errorf("listen ports of %d: %w", pid, err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			// sl local_address rem_address st ... uid timeout inode
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] {
				continue
			}
			_, hexPort, ok := strings.Cut(f[1], ":")
			if !ok {
				continue
			}
			p, err := strconv.ParseUint(hexPort, 16, 16)
			if err != nil {
				return nil, fmt.Errorf("listen ports of %d: bad line %q", pid, line)
			}
			ports = append(ports, int(p))
		}
	}
	return ports, nil
}
