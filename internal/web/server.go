package web

import (
	"context"
	"net"
	"net/http"
	"time"
)

// Timeouts and limits of NewServer.
const (
	ReadHeaderTimeout = 5 * time.Second
	// ServerReadTimeout bounds reading a whole request, body included.
	ServerReadTimeout = 30 * time.Second
	IdleTimeout       = 120 * time.Second
	MaxHeaderBytes    = 64 << 10
)

// NewServer returns an http.Server for h on addr with timeouts that suit
// the dashboard: slow clients cannot hold connections open while sending
// a request, and there is no server-wide write timeout, so event streams
// live as long as their client (each event write has its own deadline).
// Shutdown ends the open event streams, so it does not wait for them.
func NewServer(addr string, h http.Handler) *http.Server {
	base, stop := context.WithCancel(context.Background())
	srv := &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ServerReadTimeout,
		WriteTimeout:      0,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	srv.RegisterOnShutdown(stop)
	return srv
}
