//go:build faults

package faults_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
)

// proxy is a toxiproxy, run in this process, on loopback between clients
// (workers, push) and Redis. The test cuts it (every connection dropped,
// new ones refused until Restore), drops every connection at once (Drop),
// and delays what Redis sends back (Delay). Safe for concurrent use.
type proxy struct {
	t  *testing.T
	px *toxiproxy.Proxy

	mu      sync.Mutex
	cut     bool
	cuts    int // Cut and Drop calls that dropped connections
	delayed time.Duration
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
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

// Cuts counts the Cut and Drop calls.
func (p *proxy) Cuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
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
	spec := fmt.Sprintf(`{"name":"delay","type":"latency","stream":"downstream","attributes":{"latency":%d}}`, d.Milliseconds())
	_, err := p.px.Toxics.AddToxicJson(strings.NewReader(spec))
	require.NoError(p.t, err)
	p.delayed = d
}
