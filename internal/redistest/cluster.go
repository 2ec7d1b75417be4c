package redistest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clusterSlots is the number of hash slots of a Redis Cluster.
const clusterSlots = 16384

// Cluster is a Redis Cluster of primaries without replicas, on loopback.
// Its methods are not safe for concurrent use.
type Cluster struct {
	Nodes []*Server // Nodes[i] serves the i-th n-th of the slots
}

// clusterArgs make a node that keeps its data and its cluster config across
// a kill: every write is fsynced to the AOF before the reply.
var clusterArgs = []string{
	"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
	"--cluster-node-timeout", "5000",
	"--appendonly", "yes", "--appendfsync", "always",
}

// StartCluster starts n redis-server nodes with cluster mode on, each in a
// temporary directory of its own, gives each an equal share of the slots,
// joins them, and waits until every node reports cluster_state:ok. All
// nodes stop when the test ends. It skips (or fails, see Available) when
// redis-server is missing.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	Available(t)
	if n < 1 {
		t.Fatalf("StartCluster(%d): a cluster needs at least one node", n)
	}
	c := &Cluster{}
	for range n {
		s, err := startClusterNode(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		c.Nodes = append(c.Nodes, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.create(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

// startClusterNode starts a node on a port p where p and its cluster bus
// port p+10000 are both free, retrying when another process wins the race
// for either.
func startClusterNode(dir string) (*Server, error) {
	for range startAttempts {
		port, err := freeClusterPort()
		if err != nil {
			return nil, err
		}
		s, err := StartOn(dir, port, clusterArgs...)
		if !errors.Is(err, errPortInUse) {
			return s, err
		}
	}
	return nil, fmt.Errorf("start a cluster node: %d ports were taken while it started", startAttempts)
}

// freeClusterPort picks a port p in [12000, 22000) such that p and p+10000
// are free: both stay below the usual ephemeral range (32768 and up) that
// outgoing connections draw from.
func freeClusterPort() (int, error) {
	for range 200 {
		p := 12000 + rand.IntN(10000)
		if portFree(p) && portFree(p+10000) {
			return p, nil
		}
	}
	return 0, errors.New("no free pair of ports p, p+10000 in [12000, 32000)")
}

func portFree(p int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// create assigns the slots, sets distinct config epochs (so the nodes need
// not settle a collision), introduces every node to the first, and waits.
func (c *Cluster) create(ctx context.Context) error {
	n := len(c.Nodes)
	for i, s := range c.Nodes {
		from, to := i*clusterSlots/n, (i+1)*clusterSlots/n-1
		if _, err := s.Do("CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(from), strconv.Itoa(to)); err != nil {
			return err
		}
		if _, err := s.Do("CLUSTER", "SET-CONFIG-EPOCH", strconv.Itoa(i+1)); err != nil {
			return err
		}
	}
	for _, s := range c.Nodes[1:] {
		if _, err := c.Nodes[0].Do("CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(s.Port())); err != nil {
			return err
		}
	}
	return c.WaitOK(ctx)
}

// Addrs returns the nodes' host:port addresses.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		addrs[i] = s.Addr
	}
	return addrs
}

// URL returns the cluster URL redis://first?addr=second&addr=...
func (c *Cluster) URL() string {
	u := "redis://" + c.Nodes[0].Addr
	for i, s := range c.Nodes[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + s.Addr
	}
	return u
}

// WaitOK waits until every node knows every other node, sees all slots
// served and reports cluster_state:ok.
func (c *Cluster) WaitOK(ctx context.Context) error {
	want := strconv.Itoa(len(c.Nodes))
	var last string
	for {
		ok := true
		for _, s := range c.Nodes {
			info, err := doString(s.Addr, "CLUSTER", "INFO")
			if err != nil {
				ok, last = false, err.Error()
				break
			}
			if infoField(info, "cluster_state") != "ok" || infoField(info, "cluster_known_nodes") != want ||
				infoField(info, "cluster_slots_ok") != strconv.Itoa(clusterSlots) {
				ok, last = false, s.Addr+": "+info
				break
			}
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster is not ok: %w; last CLUSTER INFO: %s", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Owner returns the index in Nodes of the node that serves key's slot.
func (c *Cluster) Owner(key string) (int, error) {
	var node *Server
	for _, s := range c.Nodes {
		if s.ping() {
			node = s
			break
		}
	}
	if node == nil {
		return 0, errors.New("owner: no cluster node answers")
	}
	v, err := node.Do("CLUSTER", "KEYSLOT", key)
	if err != nil {
		return 0, err
	}
	slot, _ := v.(int64)
	v, err = node.Do("CLUSTER", "SLOTS")
	if err != nil {
		return 0, err
	}
	ranges, _ := v.([]any)
	for _, r := range ranges {
		// [start, end, [ip, port, id], replicas...]
		e, _ := r.([]any)
		if len(e) < 3 {
			continue
		}
		from, _ := e[0].(int64)
		to, _ := e[1].(int64)
		primary, _ := e[2].([]any)
		if slot < from || slot > to || len(primary) < 2 {
			continue
		}
		ip, _ := primary[0].(string)
		port, _ := primary[1].(int64)
		addr := net.JoinHostPort(ip, strconv.FormatInt(port, 10))
		for i, s := range c.Nodes {
			if s.Addr == addr {
				return i, nil
			}
		}
		return 0, fmt.Errorf("owner of %q: slot %d is served by %s, not a node of this cluster", key, slot, addr)
	}
	return 0, fmt.Errorf("owner of %q: no node serves slot %d", key, slot)
}

// Kill kills node i (SIGKILL). Its directory keeps nodes.conf and an AOF
// that holds every acknowledged write.
func (c *Cluster) Kill(i int) { c.Nodes[i].Stop() }

// Start starts a killed node i again, on its port with its directory, and
// waits until the whole cluster is ok.
func (c *Cluster) Start(ctx context.Context, i int) error {
	if err := c.Nodes[i].Restart(); err != nil {
		return err
	}
	return c.WaitOK(ctx)
}

// Restart kills node i and starts it again (see Kill and Start).
func (c *Cluster) Restart(ctx context.Context, i int) error {
	c.Kill(i)
	return c.Start(ctx, i)
}

// String lists the nodes, for test logs.
func (c *Cluster) String() string { return "cluster " + strings.Join(c.Addrs(), ",") }
