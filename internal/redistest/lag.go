package redistest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// LaggedSentinel is a Sentinel group whose replica is behind its primary
// by a fixed delay, as over a slow link or with a busy replica: the
// primary is reached through a proxy on loopback (the address the
// Sentinels monitor and hand to clients), which holds what the primary
// sends on a replication connection for Lag before passing it on, and
// drops what it holds when the primary dies. What the primary acknowledged
// in its last Lag is then lost in a failover.
type LaggedSentinel struct {
	*Sentinel
	// Proxy is the address of the proxy in front of Data[0], the first
	// primary. Sentinel's reports name it, not Data[0].Addr.
	Proxy string
	// Lag is the delay of the replication stream.
	Lag time.Duration
}

// StartLaggedSentinel is StartSentinel with the first primary behind a
// proxy that delays its replication stream by lag. Everything stops when
// the test ends.
func StartLaggedSentinel(t testing.TB, lag time.Duration) *LaggedSentinel {
	t.Helper()
	Available(t)
	primary, err := Start(t.TempDir(), "--appendonly", "yes")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(primary.Stop)
	p, err := newLagProxy(primary.Addr, lag)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	_, proxyPort, _ := net.SplitHostPort(p.addr())
	replica, err := Start(t.TempDir(), "--appendonly", "yes", "--replicaof", "127.0.0.1", proxyPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(replica.Stop)
	st := &Sentinel{Data: []*Server{primary, replica}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := waitInfo(ctx, replica.Addr, "replication", "master_link_status", "up"); err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(proxyPort)
	for range 3 {
		s, err := startSentinel(t.TempDir(), port)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		st.Sentinels = append(st.Sentinels, s)
	}
	if err := st.waitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return &LaggedSentinel{Sentinel: st, Proxy: p.addr(), Lag: lag}
}

// Server returns the data server at addr, the proxy's address standing
// for the server behind it, or nil.
func (l *LaggedSentinel) Server(addr string) *Server {
	if addr == l.Proxy {
		return l.Data[0]
	}
	return l.Sentinel.Server(addr)
}

// lagProxy forwards connections on loopback to target. A connection whose
// client speaks REPLCONF (a replica) gets what target sends after lag.
type lagProxy struct {
	ln     net.Listener
	target string
	lag    time.Duration

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newLagProxy(target string, lag time.Duration) (*lagProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &lagProxy{ln: ln, target: target, lag: lag, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *lagProxy) addr() string { return p.ln.Addr().String() }

// close stops accepting, closes every connection and waits for the
// goroutines.
func (p *lagProxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *lagProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *lagProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

func (p *lagProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			p.mu.Lock()
			for c := range p.conns {
				_ = c.Close()
			}
			p.conns = nil
			p.mu.Unlock()
			return
		}
		up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil { // the primary is down: so is the proxy, to clients
			_ = c.Close()
			continue
		}
		if !p.track(c, up) {
			_ = c.Close()
			_ = up.Close()
			return
		}
		pc := &lagConn{client: c, up: up, lag: p.lag, queue: make(chan chunk, 1<<16), dead: make(chan struct{})}
		p.wg.Add(3)
		go func() { defer p.wg.Done(); pc.upstream() }()
		go func() { defer p.wg.Done(); pc.downstream() }()
		go func() {
			defer p.wg.Done()
			pc.deliver()
			p.untrack(c, up)
		}()
	}
}

// chunk is what the target sent, and when to pass it on.
type chunk struct {
	due  time.Time
	data []byte
}

// lagConn is one proxied connection.
type lagConn struct {
	client, up net.Conn
	lag        time.Duration

	mu      sync.Mutex
	lagged  bool          // the client is a replica: delay what it gets
	queue   chan chunk    // what the target sent, in order
	dead    chan struct{} // closed when the target's side ended: drop the queue
	deadOne sync.Once
}

// upstream copies the client's bytes to the target, and marks the
// connection lagged once the client sends REPLCONF.
func (c *lagConn) upstream() {
	buf := make([]byte, 32*1024)
	for {
		n, err := c.client.Read(buf)
		if n > 0 {
			if !c.isLagged() && bytes.Contains(bytes.ToUpper(buf[:n]), []byte("REPLCONF")) {
				c.mu.Lock()
				c.lagged = true
				c.mu.Unlock()
			}
			if _, werr := c.up.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			_ = c.up.Close()
			return
		}
	}
}

func (c *lagConn) isLagged() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lagged
}

// downstream reads what the target sends and queues it, due at once or
// after the lag.
func (c *lagConn) downstream() {
	defer close(c.queue)
	buf := make([]byte, 32*1024)
	for {
		n, err := c.up.Read(buf)
		if n > 0 {
			due := time.Now()
			if c.isLagged() {
				due = due.Add(c.lag)
			}
			c.queue <- chunk{due: due, data: bytes.Clone(buf[:n])}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) || c.isLagged() {
				// The target died or closed: what a lagged client has not
				// got yet is lost with it.
				c.deadOne.Do(func() { close(c.dead) })
			}
			return
		}
	}
}

// deliver passes the queue on to the client when each chunk is due, and
// drops the rest once the target's side died.
func (c *lagConn) deliver() {
	defer func() {
		_ = c.client.Close()
		_ = c.up.Close()
	}()
	for ch := range c.queue {
		if wait := time.Until(ch.due); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-c.dead:
				t.Stop()
				return
			}
		}
		select {
		case <-c.dead:
			if c.isLagged() {
				return
			}
		default:
		}
		if _, err := c.client.Write(ch.data); err != nil {
			return
		}
	}
}
