// Package redistest starts real redis-server processes for tests, on free
// loopback ports, with their data in a temporary directory: single servers
// (ForTest, Start), a Redis Cluster of primaries (StartCluster) and a
// primary, a replica and three Sentinels (StartSentinel).
//
// Every process is started with the parent-death signal set (Linux), so a
// test binary that dies without running its cleanups does not leave servers
// behind.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Server is a running redis-server.
type Server struct {
	Addr string // host:port
	Dir  string // its working directory (AOF, RDB, logs)
	Args []string
	argv []string // the whole command line after the binary, for Restart
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// URL returns the redis:// URL of db 0 with no password.
func (s *Server) URL() string { return "redis://" + s.Addr + "/0" }

// Available reports whether redis-server is installed. When it is not, a
// test skips, unless WORKQ_REQUIRE_REDIS=1, where it fails: CI installs it.
func Available(t testing.TB) bool {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("WORKQ_REQUIRE_REDIS") == "1" {
			t.Fatalf("redis-server is not installed and WORKQ_REQUIRE_REDIS=1: install it with `apt-get install redis-server`")
		}
		t.Skip("redis-server is not installed: `apt-get install redis-server` to run the real-Redis tests")
		return false
	}
	return true
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// errPortInUse is returned by start when another process took the port
// between the check and the server's bind: the caller picks another one.
var errPortInUse = errors.New("redistest: port already in use")

// startAttempts bounds the retries of a start whose port was taken.
const startAttempts = 10

// Start starts redis-server with extra config args (such as "--appendonly",
// "yes") in dir (a new temporary directory when empty). It waits until the
// server answers PING.
func Start(dir string, args ...string) (*Server, error) {
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "workq-redis-*"); err != nil {
			return nil, err
		}
	}
	for range startAttempts - 1 {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		s, err := StartOn(dir, port, args...)
		if !errors.Is(err, errPortInUse) {
			return s, err
		}
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	return StartOn(dir, port, args...)
}

// StartOn starts redis-server on a given port, for restarts on the same
// address.
func StartOn(dir string, port int, args ...string) (*Server, error) {
	base := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--logfile", filepath.Join(dir, "redis.log")}
	s, err := start(dir, port, append(base, args...))
	if err != nil {
		return nil, err
	}
	s.Args = args
	return s, nil
}

// start runs redis-server with argv, its log in dir/redis.log, and waits
// until it answers PING. It fails at once when the process exits.
func start(dir string, port int, argv []string) (*Server, error) {
	cmd := exec.Command("redis-server", argv...)
	cmd.Stdout, cmd.Stderr = nil, nil
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	s := &Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), Dir: dir, argv: argv, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(s.done)
	}()
	logFile := filepath.Join(dir, "redis.log")
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if s.ping() {
			return s, nil
		}
		select {
		case <-s.done:
			log, _ := os.ReadFile(logFile)
			if strings.Contains(string(log), "Address already in use") {
				return nil, fmt.Errorf("redis-server on port %d: %w", port, errPortInUse)
			}
			return nil, fmt.Errorf("redis-server on port %d exited: %s", port, log)
		case <-time.After(20 * time.Millisecond):
		}
	}
	s.Stop()
	log, _ := os.ReadFile(logFile)
	return nil, fmt.Errorf("redis-server on port %d did not answer: %s", port, log)
}

func (s *Server) ping() bool {
	c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	// A server loading its AOF answers -LOADING: not ready yet.
	return err == nil && (strings.HasPrefix(line, "+PONG") || strings.HasPrefix(line, "-NOAUTH"))
}

// Port returns the server's port.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.Addr)
	n, _ := strconv.Atoi(p)
	return n
}

// Stop kills the server (SIGKILL) and waits for it. Stopping a stopped
// server does nothing.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// Restart stops the server and starts it again on the same port and dir,
// with the same arguments.
func (s *Server) Restart() error {
	s.Stop()
	n, err := start(s.Dir, s.Port(), s.argv)
	if err != nil {
		return err
	}
	n.Args = s.Args
	*s = *n
	return nil
}

// ForTest starts a server for one test and stops it when the test ends. It
// skips (or fails, see Available) when redis-server is missing.
func ForTest(t testing.TB, args ...string) *Server {
	t.Helper()
	Available(t)
	s, err := Start(t.TempDir(), args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}
