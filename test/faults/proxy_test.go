//go:build faults

package faults_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/testkit"
)

// proxy is a toxiproxy, run in this process, on loopback between clients
// (workers, push) and Redis. The test cuts it (every connection dropped,
// new ones refused until Restore), drops every connection at once (Drop),
// and delays what Redis sends back (Delay). Safe for concurrent use.
type proxy struct {
	t  *testing.T
	px *toxiproxy.Proxy

	inflight atomic.Int64 // reply chunks held back by Delay, not yet passed on

	mu      sync.Mutex
	cut     bool
	cuts    int   // Cut and Drop calls that dropped connections
	lost    int64 // reply chunks that were held back when a cut dropped them
	delayed time.Duration
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	toxics.Register(delayToxicType, new(delayToxic))
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	px := toxiproxy.NewProxy(srv, "redis", "127.0.0.1:0", target)
	require.NoError(t, px.Start())
	p := &proxy{t: t, px: px}
	t.Cleanup(px.Stop)
	return p
}

// Addr is where clients connect (the port stays the same across Cut and
// Restore).
func (p *proxy) Addr() string {
	p.px.Lock()
	defer p.px.Unlock()
	return p.px.Listen
}

// URL is the redis:// URL of db 0 through the proxy.
func (p *proxy) URL() string { return "redis://" + p.Addr() + "/0" }

// Cut drops every connection and refuses new ones until Restore.
func (p *proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return
	}
	p.lost += p.inflight.Load()
	p.px.Stop()
	p.cut = true
	p.cuts++
}

// Restore lets connections through again, on the same port.
func (p *proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.cut {
		return
	}
	// The port was free a moment ago; a start can still race another
	// process's bind, so it is tried a few times.
	var err error
	for range 50 {
		if err = p.px.Start(); err == nil {
			p.cut = false
			return
		}
		time.Sleep(20 * time.Millisecond) // the listener's port is released asynchronously
	}
	p.t.Errorf("restore the proxy on %s: %v", p.px.Listen, err)
}

// Drop drops every connection at once; new ones are let in again at once.
func (p *proxy) Drop() {
	p.Cut()
	p.Restore()
}

// DropReplying waits (up to timeout) until a reply is on its way through
// Delay, then drops every connection: the command of that reply reached
// Redis, and its client never sees the answer.
func (p *proxy) DropReplying(timeout time.Duration) {
	p.t.Helper()
	testkit.Eventually(p.t, timeout, "a reply on its way through the proxy", func() (bool, string) {
		return p.inflight.Load() > 0, "none"
	})
	p.Drop()
}

// Cuts counts the Cut and Drop calls.
func (p *proxy) Cuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

// LostReplies counts the reply chunks that Delay held back when a cut
// dropped their connection: commands that had reached Redis, whose replies
// the client never saw (go-redis sends such a command again).
func (p *proxy) LostReplies() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lost
}

// Delay delays every reply of Redis by d (0 removes the delay).
func (p *proxy) Delay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.delayed > 0 {
		require.NoError(p.t, p.px.Toxics.RemoveToxic(context.Background(), "delay"))
		p.delayed = 0
	}
	if d <= 0 {
		return
	}
	spec := fmt.Sprintf(`{"name":"delay","type":%q,"stream":"downstream","attributes":{"latency":%d}}`, delayToxicType, d.Milliseconds())
	w, err := p.px.Toxics.AddToxicJson(strings.NewReader(spec))
	require.NoError(p.t, err)
	w.Toxic.(*delayToxic).count.Store(&p.inflight)
	p.delayed = d
}

// delayToxicType is the toxiproxy type of delayToxic.
const delayToxicType = "workq_delay"

// delayToxic is toxiproxy's latency toxic that also counts the chunks it
// holds back (in count, once set), so that a cut can tell how many
// replies it dropped on the floor.
type delayToxic struct {
	Latency int64 `json:"latency"` // ms
	count   atomic.Pointer[atomic.Int64]
}

func (t *delayToxic) GetBufferSize() int { return 1024 }

func (t *delayToxic) add(n int64) {
	if c := t.count.Load(); c != nil {
		c.Add(n)
	}
}

func (t *delayToxic) Pipe(stub *toxics.ToxicStub) {
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				stub.Close()
				return
			}
			t.add(1)
			sleep := time.Duration(t.Latency)*time.Millisecond - time.Since(c.Timestamp)
			select {
			case <-time.After(sleep):
				c.Timestamp = c.Timestamp.Add(sleep)
				stub.Output <- c
				t.add(-1)
			case <-stub.Interrupt:
				stub.Output <- c // the toxic is being replaced: pass it on
				t.add(-1)
				return
			}
		}
	}
}
