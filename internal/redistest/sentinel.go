package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SentinelMaster is the master name the Sentinels of StartSentinel monitor.
const SentinelMaster = "workq-primary"

// Sentinel is a primary, a replica of it and three Sentinels (quorum 2)
// that monitor it on loopback, with short failover timings: a primary that
// does not answer for one second is failed over. Its methods are not safe
// for concurrent use.
type Sentinel struct {
	Data      []*Server // the primary and the replica, in start order
	Sentinels []*Server
}

// StartSentinel starts the servers and the Sentinels, and waits until each
// Sentinel knows the replica and the two other Sentinels, so that a
// failover can happen. Everything stops when the test ends. Sentinels run
// as `redis-server sentinel.conf --sentinel`. It skips (or fails, see
// Available) when redis-server is missing.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	Available(t)
	primary, err := Start(t.TempDir(), "--appendonly", "yes")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(primary.Stop)
	replica, err := Start(t.TempDir(), "--appendonly", "yes", "--replicaof", "127.0.0.1", strconv.Itoa(primary.Port()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(replica.Stop)
	st := &Sentinel{Data: []*Server{primary, replica}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A Sentinel learns replicas from the primary's INFO, which it reads on
	// connecting and then every ten seconds: the replica must be linked
	// before the Sentinels start.
	if err := waitInfo(ctx, replica.Addr, "replication", "master_link_status", "up"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		s, err := startSentinel(t.TempDir(), primary.Port())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		st.Sentinels = append(st.Sentinels, s)
	}
	if err := st.waitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

func startSentinel(dir string, primaryPort int) (*Server, error) {
	for range startAttempts {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		conf := filepath.Join(dir, "sentinel.conf")
		text := fmt.Sprintf(`port %[1]d
bind 127.0.0.1
dir %[2]s
logfile %[3]s
sentinel monitor %[4]s 127.0.0.1 %[5]d 2
sentinel down-after-milliseconds %[4]s 1000
sentinel failover-timeout %[4]s 5000
sentinel parallel-syncs %[4]s 1
`, port, dir, filepath.Join(dir, "redis.log"), SentinelMaster, primaryPort)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			return nil, err
		}
		s, err := start(dir, port, []string{conf, "--sentinel"})
		if !errors.Is(err, errPortInUse) {
			return s, err
		}
	}
	return nil, fmt.Errorf("start a sentinel: %d ports were taken while it started", startAttempts)
}

// waitReady waits until every Sentinel sees the primary up, one replica and
// the two other Sentinels.
func (st *Sentinel) waitReady(ctx context.Context) error {
	var last string
	for {
		ok := true
		for _, s := range st.Sentinels {
			m, err := st.master(s)
			if err != nil {
				ok, last = false, err.Error()
				break
			}
			if m["flags"] != "master" || m["num-slaves"] != "1" || m["num-other-sentinels"] != strconv.Itoa(len(st.Sentinels)-1) {
				ok, last = false, fmt.Sprintf("%s: %v", s.Addr, m)
				break
			}
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sentinels are not ready: %w; last state: %s", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// master returns SENTINEL MASTER's fields as seen by Sentinel s.
func (st *Sentinel) master(s *Server) (map[string]string, error) {
	v, err := s.Do("SENTINEL", "MASTER", SentinelMaster)
	if err != nil {
		return nil, err
	}
	kv, _ := v.([]any)
	m := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		k, _ := kv[i].(string)
		v, _ := kv[i+1].(string)
		m[k] = v
	}
	return m, nil
}

// Addrs returns the Sentinels' host:port addresses.
func (st *Sentinel) Addrs() []string {
	addrs := make([]string, len(st.Sentinels))
	for i, s := range st.Sentinels {
		addrs[i] = s.Addr
	}
	return addrs
}

// URL returns redis+sentinel://s1,s2,s3/workq-primary/0.
func (st *Sentinel) URL() string {
	return "redis+sentinel://" + strings.Join(st.Addrs(), ",") + "/" + SentinelMaster + "/0"
}

// Primary returns the primary's address, as every Sentinel reports it. It
// fails when the Sentinels disagree (a failover is under way).
func (st *Sentinel) Primary() (string, error) {
	var addr string
	for _, s := range st.Sentinels {
		v, err := s.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SentinelMaster)
		if err != nil {
			return "", err
		}
		hp, _ := v.([]any)
		if len(hp) != 2 {
			return "", fmt.Errorf("sentinel %s: no address for %s: %v", s.Addr, SentinelMaster, v)
		}
		host, _ := hp[0].(string)
		port, _ := hp[1].(string)
		a := net.JoinHostPort(host, port)
		if addr != "" && a != addr {
			return "", fmt.Errorf("sentinels disagree on the primary: %s and %s", addr, a)
		}
		addr = a
	}
	return addr, nil
}

// KillPrimary kills (SIGKILL) the data server that the Sentinels report as
// the primary, and returns its address.
func (st *Sentinel) KillPrimary() (string, error) {
	addr, err := st.Primary()
	if err != nil {
		return "", err
	}
	for _, s := range st.Data {
		if s.Addr == addr {
			s.Stop()
			return addr, nil
		}
	}
	return "", fmt.Errorf("the sentinels' primary %s is none of the data servers", addr)
}

// WaitFailover waits until every Sentinel reports the same primary, other
// than old, and that server says it is a master. It returns its address.
func (st *Sentinel) WaitFailover(ctx context.Context, old string) (string, error) {
	var last string
	for {
		addr, err := st.Primary()
		switch {
		case err != nil:
			last = err.Error()
		case addr == old:
			last = "the sentinels still report " + old
		default:
			role, err := doString(addr, "INFO", "replication")
			if err == nil && infoField(role, "role") == "master" {
				return addr, nil
			}
			last = fmt.Sprintf("%s is not a master yet (%v): %s", addr, err, role)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no failover from %s: %w; last: %s", old, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitInfo waits until INFO section on addr has field:want.
func waitInfo(ctx context.Context, addr, section, field, want string) error {
	var last string
	for {
		info, err := doString(addr, "INFO", section)
		if err == nil && infoField(info, field) == want {
			return nil
		}
		last = fmt.Sprintf("%v %s:%s", err, field, infoField(info, field))
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s on %s never became %s: %w (last: %s)", field, addr, want, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
