package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/workq/workq/internal/redisconn"
)

// DefaultURL is the Redis URL used when none is given.
const DefaultURL = redisconn.DefaultURL

// ErrBadURL wraps the errors of Redis settings that cannot work.
var ErrBadURL = redisconn.ErrBadURL

// DialOptions say how to reach Redis (see internal/redisconn for the URL
// forms: a server, a Cluster, a Sentinel group).
type DialOptions struct {
	// URL is a Redis URL. Default DefaultURL.
	URL string
	// Password, when set, overrides the URL's.
	Password string
	// TLSConfig, when set, is used for TLS (custom CAs, mTLS).
	TLSConfig *tls.Config
	// PoolSize is the connection pool size per node; 0 is go-redis's.
	PoolSize int
}

func (o DialOptions) conn() redisconn.Options {
	return redisconn.Options{URL: o.URL, Password: o.Password, TLSConfig: o.TLSConfig, PoolSize: o.PoolSize}
}

// ValidateDial checks the options without contacting Redis. Its errors
// wrap ErrBadURL.
func ValidateDial(o DialOptions) error { return redisconn.Validate(o.conn()) }

// Open connects to Redis (a server, a Cluster or a Sentinel group) and
// checks it as Ping does. It returns ErrBadURL, ErrUnavailable, ErrAuth or
// ErrEviction.
func Open(ctx context.Context, o DialOptions) (*Store, error) {
	rdb, info, err := redisconn.Open(ctx, o.conn())
	if err != nil {
		if errors.Is(err, ErrBadURL) {
			return nil, err
		}
		return nil, fmt.Errorf("connect to %s: %w", info.URL, classifyConnect(err))
	}
	s := New(rdb)
	if err := s.Ping(ctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("connect to %s: %w", info.URL, err)
	}
	return s, nil
}

// classifyConnect makes a failed connection an ErrUnavailable (or ErrAuth)
// whatever the driver said.
func classifyConnect(err error) error {
	c := classify(err)
	if errors.Is(c, ErrUnavailable) || errors.Is(c, ErrOutOfMemory) {
		return c
	}
	return fmt.Errorf("%w: %s", ErrUnavailable, Redact(err.Error()))
}

// RedactURL returns a Redis URL with its passwords hidden.
func RedactURL(raw string) string { return redisconn.Redact(raw) }
