package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

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

// Dial checks the options and returns a Store that connects on first use
// (and again while Redis cannot be reached): its calls return
// ErrUnavailable until Redis answers. It returns ErrBadURL.
func Dial(o DialOptions) (*Store, error) {
	if err := ValidateDial(o); err != nil {
		return nil, err
	}
	s := newStore()
	s.dial = &o
	return s, nil
}

// Open is Dial, then a first connection: it checks that Redis answers and
// will not evict workq's keys, and loads the scripts. It returns
// ErrBadURL, ErrUnavailable, ErrAuth or ErrEviction.
func Open(ctx context.Context, o DialOptions) (*Store, error) {
	s, err := Dial(o)
	if err != nil {
		return nil, err
	}
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// connect makes the go-redis client (a server, a Cluster or a Sentinel
// group) and checks that it answers.
func connect(ctx context.Context, o DialOptions) (redis.UniversalClient, error) {
	rdb, _, err := redisconn.Open(ctx, o.conn())
	if err != nil {
		if errors.Is(err, ErrBadURL) {
			return nil, err
		}
		return nil, classifyConnect(err)
	}
	return rdb, nil
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
