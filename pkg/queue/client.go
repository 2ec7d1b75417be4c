package queue

import (
	"context"
	"crypto/tls"
	"time"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/pkg/jobstate"
)

// DefaultURL is the Redis URL used when none is given.
const DefaultURL = store.DefaultURL

// Options say how to reach Redis.
type Options struct {
	// URL is redis://[user[:password]@]host:port/db, rediss:// for TLS, or
	// unix:///path. Default DefaultURL.
	URL string
	// Password, when set, overrides the URL's password.
	Password string
	// TLSConfig, when set, is used for TLS (custom CAs, mTLS).
	TLSConfig *tls.Config
	// PoolSize is the connection pool size. Default: go-redis's default.
	PoolSize int
}

func (o Options) dial() store.DialOptions {
	return store.DialOptions{URL: o.URL, Password: o.Password, TLSConfig: o.TLSConfig, PoolSize: o.PoolSize}
}

// Client creates, loads and administers Jobs. It connects on first use
// and again while Redis cannot be reached, so a process may start before
// Redis does. It is safe for concurrent use.
type Client struct {
	s *store.Store
}

// Open connects to Redis, checks that it answers and will not evict
// workq's keys, and loads the scripts. It returns ErrBadURL, ErrUnavailable,
// ErrAuth or ErrEviction.
func Open(ctx context.Context, o Options) (*Client, error) {
	s, err := store.Open(ctx, o.dial())
	if err != nil {
		return nil, err
	}
	return &Client{s: s}, nil
}

// Connect checks the options and returns a Client without contacting Redis,
// for processes that wait for Redis to come up: calls return ErrUnavailable
// until it answers. It returns ErrBadURL.
func Connect(o Options) (*Client, error) {
	s, err := store.Dial(o.dial())
	if err != nil {
		return nil, err
	}
	return &Client{s: s}, nil
}

// store returns the store; the context is for symmetry with the calls
// that connect on first use.
func (c *Client) store(context.Context) (*store.Store, error) { return c.s, nil }

// RedactURL returns a Redis URL with its passwords replaced.
func RedactURL(raw string) string {
	if raw == "" {
		raw = DefaultURL
	}
	return store.RedactURL(raw)
}

// Close closes the connections.
func (c *Client) Close() error { return c.s.Close() }

// Create creates a Job with a defaulted, validated spec and a fresh
// incarnation. A fixed completion count Job is sealed at once: its items
// are the indexes 0..Completions-1. It returns ErrExists when the name is
// taken, or an error wrapping jobstate.ErrInvalidSpec.
func (c *Client) Create(ctx context.Context, name string, spec jobstate.Spec) error {
	s, err := c.store(ctx)
	if err != nil {
		return err
	}
	_, err = s.Create(ctx, name, spec)
	return err
}

// Seal marks a Job as fully loaded: pushes are refused from now on and
// workers may finish once it drains. It returns false when it was sealed
// already, and ErrNoJob.
func (c *Client) Seal(ctx context.Context, name string) (bool, error) {
	s, err := c.store(ctx)
	if err != nil {
		return false, err
	}
	return s.Seal(ctx, name, "")
}

// Suspend stops a Job from handing out items; its workers hand back the
// items they have not started. It returns false when it was suspended
// already, and ErrNoJob or ErrFinished.
func (c *Client) Suspend(ctx context.Context, name string) (bool, error) {
	s, err := c.store(ctx)
	if err != nil {
		return false, err
	}
	return s.SetSuspended(ctx, name, true)
}

// Resume lets a suspended Job hand out items again and restarts its active
// deadline. It returns false when it was not suspended.
func (c *Client) Resume(ctx context.Context, name string) (bool, error) {
	s, err := c.store(ctx)
	if err != nil {
		return false, err
	}
	return s.SetSuspended(ctx, name, false)
}

// RetryDead puts every dead item back with fresh attempts. A finished Job
// is reopened (back to Running, with a Reopened condition) only with
// reopen; otherwise it returns ErrFinished. It returns how many items came
// back, and ErrNoJob.
func (c *Client) RetryDead(ctx context.Context, name string, reopen bool) (int, error) {
	s, err := c.store(ctx)
	if err != nil {
		return 0, err
	}
	return s.RetryDead(ctx, name, reopen)
}

// Delete removes every key of a Job; its workers stop. It returns ErrNoJob
// when there was nothing to delete.
func (c *Client) Delete(ctx context.Context, name string) error {
	s, err := c.store(ctx)
	if err != nil {
		return err
	}
	return s.Delete(ctx, name)
}

// Now returns the Redis server's clock, the one every lease uses.
func (c *Client) Now(ctx context.Context) (time.Time, error) {
	s, err := c.store(ctx)
	if err != nil {
		return time.Time{}, err
	}
	return s.Now(ctx)
}

// Ping checks that Redis answers and will not evict workq's keys. It
// returns ErrUnavailable, ErrAuth or ErrEviction.
func (c *Client) Ping(ctx context.Context) error {
	if err := c.s.Ping(ctx); err != nil {
		return err
	}
	return nil
}

// Inspector returns the Client's reader of Job state.
func (c *Client) Inspector() *Inspector { return &Inspector{c: c} }
