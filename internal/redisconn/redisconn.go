package redisconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultURL is the Redis URL used when Options.URL is empty.
const DefaultURL = "redis://127.0.0.1:6379/0"

// ErrBadURL is wrapped by the errors of a URL (or a TLS configuration) that
// cannot work: the message names the problem and the accepted forms.
var ErrBadURL = errors.New("bad Redis URL")

// Default timeouts. workq retries with its own backoff, so the driver makes
// one dial attempt per command instead of five, each bounded.
const (
	DefaultDialTimeout  = 5 * time.Second
	DefaultReadTimeout  = 10 * time.Second
	DefaultWriteTimeout = 10 * time.Second
	defaultDialRetries  = 1
)

// Options say how to reach Redis. The zero value reaches DefaultURL.
type Options struct {
	// URL is one of the forms in the package doc. Default DefaultURL.
	URL string
	// Password, when set, overrides the URL's password (for Sentinel: the
	// primary's, not the Sentinels').
	Password string
	// TLSConfig, when set, replaces the default TLS settings of a rediss://
	// or rediss+sentinel:// URL (custom CAs, client certificates). It is an
	// ErrBadURL with any other URL.
	TLSConfig *tls.Config
	// PoolSize is the number of connections per Redis node. Default: the
	// URL's pool_size, else go-redis's (10 per CPU).
	PoolSize int
	// DialTimeout bounds one connection attempt. Default: the URL's
	// dial_timeout, else DefaultDialTimeout.
	DialTimeout time.Duration
	// ReadTimeout and WriteTimeout bound one command's reply and request.
	// Default: the URL's read_timeout and write_timeout, else
	// DefaultReadTimeout and DefaultWriteTimeout.
	ReadTimeout, WriteTimeout time.Duration
}

// Kind is what a URL reaches.
type Kind string

// The kinds of Redis deployment.
const (
	Single   Kind = "single"
	Cluster  Kind = "cluster"
	Sentinel Kind = "sentinel"
)

// Info describes an open connection, for logs.
type Info struct {
	Kind Kind
	// URL is the URL with its passwords replaced (see Redact).
	URL string
}

// LogValue logs Info as a group of kind and url.
func (i Info) LogValue() slog.Value {
	return slog.GroupValue(slog.String("kind", string(i.Kind)), slog.String("url", i.URL))
}

// Open checks o, connects, and checks that Redis answers. A single-node URL
// that reaches a Redis Cluster node gives a cluster client seeded with it.
// The client is safe for concurrent use; the caller closes it.
//
// Errors wrap ErrBadURL when the settings cannot work (fix them and retry)
// and the driver's error when Redis cannot be reached or refuses the
// credentials (retry later). They never contain a password.
func Open(ctx context.Context, o Options) (redis.UniversalClient, Info, error) {
	t, err := parse(o)
	if err != nil {
		return nil, Info{}, err
	}
	info := Info{Kind: t.kind, URL: Redact(t.raw)}
	var rdb redis.UniversalClient
	switch t.kind {
	case Cluster:
		rdb = redis.NewClusterClient(t.cluster)
	case Sentinel:
		rdb = redis.NewFailoverClient(t.failover)
	default:
		return openSingle(ctx, o, t, info)
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		if t.kind == Sentinel && errors.Is(err, redis.Nil) {
			// A Sentinel that answers nil to GET-MASTER-ADDR-BY-NAME does not
			// monitor that name; go-redis calls that "unreachable".
			return nil, info, fmt.Errorf("%w %s: no Sentinel that answered knows a master named %q (%v); use the name of their `sentinel monitor NAME ...` line",
				ErrBadURL, info.URL, t.failover.MasterName, oneLine{err})
		}
		return nil, info, fmt.Errorf("connect to Redis %s %s: %w", info.Kind, info.URL, oneLine{err})
	}
	return rdb, info, nil
}

// openSingle connects to one node and asks what it is: a node of a Redis
// Cluster gets a cluster client, a Sentinel is refused.
func openSingle(ctx context.Context, o Options, t target, info Info) (redis.UniversalClient, Info, error) {
	rdb := redis.NewClient(t.single)
	mode, err := serverMode(ctx, rdb)
	if err != nil {
		_ = rdb.Close()
		return nil, info, fmt.Errorf("connect to Redis %s: %w", info.URL, err)
	}
	switch mode {
	case "cluster":
		_ = rdb.Close()
		if t.single.Network == "unix" {
			return nil, info, badURL(t.raw, "it is a Redis Cluster node, which workq reaches over TCP: use redis://host:port")
		}
		c, err := parseCluster(o, t.raw, true)
		if err != nil {
			return nil, info, err
		}
		info.Kind = Cluster
		cc := redis.NewClusterClient(c.cluster)
		if err := cc.Ping(ctx).Err(); err != nil {
			_ = cc.Close()
			return nil, info, fmt.Errorf("connect to Redis cluster %s: %w", info.URL, err)
		}
		return cc, info, nil
	case "sentinel":
		_ = rdb.Close()
		return nil, info, badURL(t.raw, fmt.Sprintf("%s is a Redis Sentinel, not a Redis: use redis+sentinel://%s/MASTER", t.single.Addr, t.single.Addr))
	}
	return rdb, info, nil
}

// serverMode returns the "mode" of the server's HELLO reply: "standalone",
// "cluster" or "sentinel". HELLO needs no ACL grant.
func serverMode(ctx context.Context, rdb *redis.Client) (string, error) {
	v, err := rdb.Do(ctx, "HELLO").Result()
	if err != nil {
		msg := err.Error()
		switch {
		case strings.Contains(msg, "SELECT is not allowed in cluster mode"):
			return "cluster", nil // the URL names a db: parseCluster refuses it
		case strings.Contains(strings.ToLower(msg), "unknown command 'hello'"):
			return "standalone", nil // Redis before 6: no cluster detection
		case strings.Contains(strings.ToLower(msg), "wrong number of arguments for 'hello'"):
			return "standalone", nil // a server that needs HELLO's version (miniredis): never a cluster
		}
		return "", err
	}
	var kv []any
	switch v := v.(type) {
	case map[any]any: // RESP3
		mode, _ := v["mode"].(string)
		return mode, nil
	case map[string]any:
		mode, _ := v["mode"].(string)
		return mode, nil
	case []any: // RESP2: key, value, ...
		kv = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i] == "mode" {
			mode, _ := kv[i+1].(string)
			return mode, nil
		}
	}
	return "standalone", nil
}

// Validate checks o as Open would, without contacting Redis: for flag
// checks before a process waits for Redis to come up. Its errors wrap
// ErrBadURL.
func Validate(o Options) error {
	_, err := parse(o)
	return err
}

// oneLine is an error whose text is on one line: go-redis joins the answers
// of several Sentinels with newlines, and a CLI error is one line.
type oneLine struct{ err error }

func (e oneLine) Error() string {
	return strings.ReplaceAll(strings.TrimSpace(e.err.Error()), "\n", "; ")
}
func (e oneLine) Unwrap() error { return e.err }
