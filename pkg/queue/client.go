package queue

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultURL is the Redis URL used when none is given.
const DefaultURL = "redis://127.0.0.1:6379/0"

// Options say how to reach Redis.
type Options struct {
	// URL is redis://[user[:password]@]host:port/db, or rediss:// for TLS.
	// Default DefaultURL.
	URL string
	// Password, when set, overrides the URL's password (WORKQ_REDIS_PASSWORD).
	Password string
	// TLSConfig, when set, is used for rediss:// URLs (custom CAs, mTLS).
	TLSConfig *tls.Config
	// PoolSize is the connection pool size. Default: go-redis's default.
	PoolSize int
}

// Client is a workq handle on one Redis. It is safe for concurrent use.
type Client struct {
	rdb redis.UniversalClient
}

// ParseURL checks a Redis URL and returns go-redis options. Its errors never
// include the password.
func ParseURL(raw string, password string) (*redis.Options, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
		return nil, fmt.Errorf("redis URL %q is not valid; use redis://[user:password@]host:port/db or rediss:// for TLS", RedactURL(raw))
	}
	opt, err := redis.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("redis URL %q is not valid (%s); use redis://[user:password@]host:port/db or rediss:// for TLS", RedactURL(raw), redact(err.Error()))
	}
	if password != "" {
		opt.Password = password
	}
	return opt, nil
}

// RedactURL returns raw with its password replaced by "***".
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return redact(raw)
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "***")
	}
	return u.Redacted()
}

// Open connects to Redis, checks that it answers, and loads the scripts.
// It returns ErrUnavailable when Redis cannot be reached or refuses the
// credentials.
func Open(ctx context.Context, o Options) (*Client, error) {
	c, err := Connect(o)
	if err != nil {
		return nil, err
	}
	if err := c.Ping(ctx); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("connect to %s: %w", RedactURL(cmp.Or(o.URL, DefaultURL)), err)
	}
	return c, nil
}

// New wraps an existing go-redis client (a single node, a Sentinel or a
// Cluster client).
func New(rdb redis.UniversalClient) *Client { return &Client{rdb: rdb} }

// Ping checks that Redis answers and loads the scripts so that pipelines of
// EVALSHA find them. It returns ErrUnavailable on failure.
func (c *Client) Ping(ctx context.Context) error {
	if err := c.rdb.Ping(ctx).Err(); err != nil {
		return classify(err)
	}
	return c.loadScripts(ctx)
}

func (c *Client) loadScripts(ctx context.Context) error {
	for _, s := range allScripts {
		if err := s.Load(ctx, c.rdb).Err(); err != nil {
			return fmt.Errorf("load scripts: %w", classify(err))
		}
	}
	return nil
}

// Close closes the connections.
func (c *Client) Close() error { return c.rdb.Close() }

// Redis returns the underlying go-redis client, for tests and tools.
func (c *Client) Redis() redis.UniversalClient { return c.rdb }

// run runs a script with the Job's keys, mapping its errors.
func (c *Client) run(ctx context.Context, s *redis.Script, job string, args ...any) (any, error) {
	v, err := s.Run(ctx, c.rdb, keysFor(job).all(), args...).Result()
	if err != nil && errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return v, scriptError(job, err)
}

// Now returns the Redis server's clock, the one every lease uses.
func (c *Client) Now(ctx context.Context) (time.Time, error) {
	t, err := c.rdb.Time(ctx).Result()
	return t, classify(err)
}

// Connect checks the options and returns a Client without contacting Redis,
// for processes that wait for Redis to come up (workers). Calls return
// ErrUnavailable until it answers; scripts load on first use.
func Connect(o Options) (*Client, error) {
	raw := o.URL
	if raw == "" {
		raw = DefaultURL
	}
	opt, err := ParseURL(raw, o.Password)
	if err != nil {
		return nil, err
	}
	if o.TLSConfig != nil && opt.TLSConfig != nil {
		opt.TLSConfig = o.TLSConfig
	}
	if o.PoolSize > 0 {
		opt.PoolSize = o.PoolSize
	}
	opt.DialTimeout = 5 * time.Second
	// workq retries with its own backoff (and --wait); the driver's five
	// dial attempts per command only delayed each error by seconds.
	opt.DialerRetries = 1
	opt.ReadTimeout = 10 * time.Second
	opt.WriteTimeout = 10 * time.Second
	return New(redis.NewClient(opt)), nil
}

// SetDriverLogger sends the Redis driver's own messages (dial failures,
// pool events) to l at debug level instead of stderr, where they would
// repeat what workq's errors already say. It affects the whole process.
func SetDriverLogger(l *slog.Logger) { redis.SetLogger(driverLogger{l}) }

type driverLogger struct{ l *slog.Logger }

func (d driverLogger) Printf(ctx context.Context, format string, v ...any) {
	d.l.DebugContext(ctx, "redis driver", "msg", redact(fmt.Sprintf(format, v...)))
}
