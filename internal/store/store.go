package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Store is workq's handle on one Redis deployment (a server, a Sentinel
// group or a Cluster). A Store made by Dial connects on first use, and
// again while Redis cannot be reached, so a process may start before Redis.
// It is safe for concurrent use.
type Store struct {
	sc   *scripts
	dial *DialOptions // how to connect, for a Store made by Dial

	connMu sync.Mutex
	conn   atomic.Pointer[redis.UniversalClient]
	closed bool

	mu   sync.Mutex
	keys map[string]Keys // by Job name, built once
}

// New returns a Store on rdb. It does not contact Redis.
func New(rdb redis.UniversalClient) *Store {
	s := newStore()
	s.conn.Store(&rdb)
	return s
}

// builtScripts are the scripts every Store shares: building them (the
// library shaken per script) costs milliseconds of CPU, once per process.
var builtScripts = sync.OnceValues(loadScripts)

func newStore() *Store {
	sc, err := builtScripts()
	if err != nil {
		// The scripts are embedded: a failure here is a build defect.
		panic(err)
	}
	return &Store{sc: sc, keys: map[string]Keys{}}
}

// rdb returns the connected client; call ready first.
func (s *Store) rdb() redis.UniversalClient {
	c := s.conn.Load()
	if c == nil {
		panic("store: Redis used before the Store connected (a missing ready call)")
	}
	return *c
}

// ready connects a Store made by Dial, if it is not yet connected. It
// returns ErrBadURL, ErrUnavailable, ErrAuth or ErrEviction.
func (s *Store) ready(ctx context.Context) error {
	if s.conn.Load() != nil {
		return nil
	}
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.conn.Load() != nil {
		return nil
	}
	if s.closed || s.dial == nil {
		return fmt.Errorf("%w: the store is closed", ErrUnavailable)
	}
	rdb, err := connect(ctx, *s.dial)
	if err != nil {
		return err
	}
	s.conn.Store(&rdb)
	if err := s.ping(ctx); err != nil {
		s.conn.Store(nil)
		_ = rdb.Close()
		return err
	}
	return nil
}

// Redis returns the underlying client, for tools and tests; nil until a
// Store made by Dial has connected.
func (s *Store) Redis() redis.UniversalClient {
	if c := s.conn.Load(); c != nil {
		return *c
	}
	return nil
}

// Close closes the connections.
func (s *Store) Close() error {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	s.closed = true
	if c := s.conn.Load(); c != nil {
		return (*c).Close()
	}
	return nil
}

// keysOf returns the keys of job, cached.
func (s *Store) keysOf(job string) Keys {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[job]
	if !ok {
		if len(s.keys) > 10000 {
			clear(s.keys)
		}
		k = KeysFor(job)
		s.keys[job] = k
	}
	return k
}

// run runs a script on job's keys and maps its errors.
func (s *Store) run(ctx context.Context, sc *script, job string, args ...any) (any, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	v, err := sc.Run(ctx, s.rdb(), sc.keysOf(s.keysOf(job)), args...).Result()
	if err != nil {
		return nil, mapError(err)
	}
	return v, nil
}

// Ping checks that Redis answers, that it will not evict workq's keys, and
// loads the scripts so that pipelines of EVALSHA find them. It returns
// ErrUnavailable, ErrAuth or ErrEviction.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.ready(ctx); err != nil {
		return err
	}
	return s.ping(ctx)
}

func (s *Store) ping(ctx context.Context) error {
	if err := s.rdb().Ping(ctx).Err(); err != nil {
		return classify(err)
	}
	if err := s.checkEviction(ctx); err != nil {
		return err
	}
	return s.LoadScripts(ctx)
}

// LoadScripts loads every script (SCRIPT LOAD, on every primary of a
// Cluster).
func (s *Store) LoadScripts(ctx context.Context) error {
	for _, sc := range s.sc.all {
		if err := sc.Load(ctx, s.rdb()).Err(); err != nil {
			return fmt.Errorf("load script %s: %w", sc.name, classify(err))
		}
	}
	return nil
}

// CheckEviction is checkEviction on a connected store.
func (s *Store) CheckEviction(ctx context.Context) error {
	if err := s.ready(ctx); err != nil {
		return err
	}
	return s.checkEviction(ctx)
}

// checkEviction refuses a Redis whose maxmemory-policy could evict workq's
// keys (anything but noeviction): an evicted pending list loses items
// silently. It reads INFO memory, which needs no CONFIG rights; on a
// Cluster it checks every primary.
func (s *Store) checkEviction(ctx context.Context) error {
	check := func(ctx context.Context, c redis.Cmdable) error {
		info, err := c.Info(ctx, "memory").Result()
		if err != nil {
			if strings.Contains(err.Error(), "not supported") {
				// A server without memory info (the embedded miniredis of
				// `coordinator run`) has no maxmemory and evicts nothing.
				return nil
			}
			return classify(err)
		}
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "maxmemory_policy:"); ok && v != "noeviction" {
				return fmt.Errorf("%w: its maxmemory-policy is %s, under which Redis may delete workq's keys and lose items", ErrEviction, v)
			}
		}
		return nil
	}
	if cc, ok := s.rdb().(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return check(ctx, c) })
	}
	return check(ctx, s.rdb())
}

// Now returns the Redis server's clock, the one every lease uses.
func (s *Store) Now(ctx context.Context) (time.Time, error) {
	if err := s.ready(ctx); err != nil {
		return time.Time{}, err
	}
	t, err := s.rdb().Time(ctx).Result()
	return t, classify(err)
}

// isNoScript reports a pipelined EVALSHA whose script Redis forgot (a
// restart without persistence of the script cache).
func isNoScript(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "NOSCRIPT")
}

// SetDriverLogger sends the Redis driver's own messages (dial failures,
// pool events) to l at debug level instead of stderr, where they would
// repeat what workq's errors already say. It affects the whole process.
func SetDriverLogger(l *slog.Logger) { redis.SetLogger(driverLogger{l}) }

type driverLogger struct{ l *slog.Logger }

func (d driverLogger) Printf(ctx context.Context, format string, v ...any) {
	d.l.DebugContext(ctx, "redis driver", "msg", Redact(fmt.Sprintf(format, v...)))
}
