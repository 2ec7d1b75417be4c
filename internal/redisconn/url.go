package redisconn

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// accepted lists the URL forms, for error messages.
const accepted = "accepted forms: redis://[user[:password]@]host:port[/db] (rediss:// for TLS), " +
	"unix:///path/to/redis.sock[?db=N], " +
	"redis://host:port?addr=host2:port2&addr=host3:port3 for a Redis Cluster, " +
	"or redis+sentinel://[user[:password]@]host:port[,host:port...]/MASTER[/db] for Sentinel"

// defaultSentinelPort is the port of a Sentinel address given without one.
const defaultSentinelPort = "26379"

// target is a parsed URL with Options applied: exactly one of the option
// structs is set, by kind.
type target struct {
	raw      string
	kind     Kind
	single   *redis.Options
	cluster  *redis.ClusterOptions
	failover *redis.FailoverOptions
}

// badURL is an ErrBadURL naming the problem and the accepted forms.
func badURL(raw, problem string) error {
	return fmt.Errorf("%w %q: %s; %s", ErrBadURL, Redact(raw), problem, accepted)
}

// parse checks o and builds the go-redis options, without I/O.
func parse(o Options) (target, error) {
	raw := cmp.Or(o.URL, DefaultURL)
	scheme, _, ok := strings.Cut(raw, "://")
	if !ok {
		return target{}, badURL(raw, "it has no scheme")
	}
	switch scheme {
	case "redis+sentinel", "rediss+sentinel":
		return parseSentinel(o, raw, scheme)
	case "redis", "rediss", "unix":
	default:
		return target{}, badURL(raw, fmt.Sprintf("unknown scheme %q", scheme))
	}
	u, err := url.Parse(raw)
	if err != nil {
		return target{}, badURL(raw, urlProblem(raw, err))
	}
	q := u.Query()
	if err := primaryOnly(raw, q); err != nil {
		return target{}, err
	}
	switch {
	case q.Has("master_name"):
		return target{}, badURL(raw, "master_name: for Sentinel, write redis+sentinel://sentinel1:26379,sentinel2:26379/MASTER")
	case q.Has("addr") && scheme == "unix":
		return target{}, badURL(raw, "addr: a Redis Cluster is reached over TCP, not a unix socket")
	case q.Has("addr"):
		return parseCluster(o, raw, false)
	}
	opt, err := redis.ParseURL(raw)
	if err != nil {
		return target{}, badURL(raw, driverProblem(err, u))
	}
	t := target{raw: raw, kind: Single, single: opt}
	err = settle(o, raw, knobs{
		password: &opt.Password, tls: &opt.TLSConfig, pool: &opt.PoolSize, retries: &opt.DialerRetries,
		dial: &opt.DialTimeout, read: &opt.ReadTimeout, write: &opt.WriteTimeout,
	})
	return t, err
}

// parseCluster builds cluster options. detected is true when raw is a
// single-node URL whose server turned out to be a cluster node.
func parseCluster(o Options, raw string, detected bool) (target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return target{}, badURL(raw, urlProblem(raw, err))
	}
	q := u.Query()
	db := strings.Trim(u.Path, "/")
	if q.Has("db") {
		db = q.Get("db")
		q.Del("db")
	}
	if db != "" && db != "0" {
		what := "a Redis Cluster URL"
		if detected {
			what = "this Redis is a node of a Redis Cluster, which"
		}
		return target{}, badURL(raw, fmt.Sprintf("%s has only db 0: remove /%s", what, db))
	}
	// go-redis's cluster parser knows no skip_verify: apply it here.
	skipVerify := false
	if q.Has("skip_verify") {
		if skipVerify, err = strconv.ParseBool(q.Get("skip_verify")); err != nil {
			return target{}, badURL(raw, "skip_verify must be true or false")
		}
		q.Del("skip_verify")
	}
	u.Path, u.RawQuery = "", q.Encode()
	opt, err := redis.ParseClusterURL(u.String())
	if err != nil {
		return target{}, badURL(raw, driverProblem(err, u))
	}
	if opt.TLSConfig != nil {
		opt.TLSConfig.MinVersion = tls.VersionTLS12
		opt.TLSConfig.InsecureSkipVerify = skipVerify
	}
	t := target{raw: raw, kind: Cluster, cluster: opt}
	err = settle(o, raw, knobs{
		password: &opt.Password, tls: &opt.TLSConfig, pool: &opt.PoolSize, retries: &opt.DialerRetries,
		dial: &opt.DialTimeout, read: &opt.ReadTimeout, write: &opt.WriteTimeout,
	})
	return t, err
}

// parseSentinel reads redis+sentinel://[user[:password]@]h1:p1,h2:p2/MASTER[/db]
// and hands go-redis the equivalent of its own failover URL.
func parseSentinel(o Options, raw, scheme string) (target, error) {
	rest := strings.TrimPrefix(raw, scheme+"://")
	rest, query, _ := strings.Cut(rest, "?")
	if strings.Contains(rest, "#") || strings.Contains(query, "#") {
		return target{}, badURL(raw, "a fragment (#...) has no meaning here; percent-encode # in a password as %23")
	}
	authority, path, _ := strings.Cut(rest, "/")
	var user, password string
	hasPassword := false
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		var err error
		name, pw, hasPw := strings.Cut(authority[:at], ":")
		if user, err = url.PathUnescape(name); err != nil {
			return target{}, badURL(raw, "the user name has a bad %-escape")
		}
		if password, err = url.PathUnescape(pw); err != nil {
			return target{}, badURL(raw, "the password has a bad %-escape")
		}
		hasPassword = hasPw
		authority = authority[at+1:]
	}
	var addrs []string
	for h := range strings.SplitSeq(authority, ",") {
		addr, err := sentinelAddr(h)
		if err != nil {
			return target{}, badURL(raw, err.Error())
		}
		addrs = append(addrs, addr)
	}
	master, db, _ := strings.Cut(path, "/")
	master, err := url.PathUnescape(master)
	if err != nil || master == "" {
		return target{}, badURL(raw, "it names no master: add /MASTER, the name in the Sentinels' `sentinel monitor MASTER ...`")
	}
	if db = strings.TrimSuffix(db, "/"); db == "" {
		db = "0"
	}
	if n, err := strconv.Atoi(db); err != nil || n < 0 {
		return target{}, badURL(raw, fmt.Sprintf("db %q after the master name is not a database number", db))
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return target{}, badURL(raw, "its query is not valid; percent-encode & = in parameter values")
	}
	for _, k := range []string{"master_name", "addr", "username", "password", "db"} {
		if q.Has(k) {
			return target{}, badURL(raw, fmt.Sprintf("%s is not a parameter of redis+sentinel URLs: the Sentinels, master, db and credentials go in the URL's host, path and user parts", k))
		}
	}
	if err := primaryOnly(raw, q); err != nil {
		return target{}, err
	}
	sentinelUser, sentinelPassword := q.Get("sentinel_username"), q.Get("sentinel_password")
	q.Del("sentinel_username")
	q.Del("sentinel_password")

	// go-redis's failover URL: the userinfo is the Sentinels', the
	// primary's credentials are parameters, the first Sentinel is the host.
	fu := url.URL{Scheme: strings.TrimSuffix(scheme, "+sentinel"), Host: addrs[0], Path: "/" + db}
	if sentinelUser != "" || sentinelPassword != "" {
		fu.User = url.UserPassword(sentinelUser, sentinelPassword)
	}
	q.Set("master_name", master)
	for _, a := range addrs[1:] {
		q.Add("addr", a)
	}
	if user != "" {
		q.Set("username", user)
	}
	if hasPassword {
		q.Set("password", password)
	}
	fu.RawQuery = q.Encode()
	opt, err := redis.ParseFailoverURL(fu.String())
	if err != nil {
		return target{}, badURL(raw, scrub(strings.TrimPrefix(err.Error(), "redis: "), password, sentinelPassword))
	}
	t := target{raw: raw, kind: Sentinel, failover: opt}
	err = settle(o, raw, knobs{
		password: &opt.Password, tls: &opt.TLSConfig, pool: &opt.PoolSize, retries: &opt.DialerRetries,
		dial: &opt.DialTimeout, read: &opt.ReadTimeout, write: &opt.WriteTimeout,
	})
	return t, err
}

// primaryOnly refuses go-redis's parameters that send commands to
// replicas: workq reads what it has just written, and a replica can lag
// (NewFailoverClient even panics on the routing ones).
func primaryOnly(raw string, q url.Values) error {
	for _, k := range []string{"read_only", "replica_only", "route_by_latency", "route_randomly"} {
		if q.Has(k) {
			return badURL(raw, k+": workq sends every command to the primary, which holds the latest writes; remove it")
		}
	}
	return nil
}

// sentinelAddr checks one host[:port] of a Sentinel URL.
func sentinelAddr(h string) (string, error) {
	if h == "" {
		return "", errors.New("it has an empty Sentinel address: list them as host:port,host:port")
	}
	hasPort := strings.Contains(h, ":")
	if strings.HasPrefix(h, "[") { // [IPv6] or [IPv6]:port
		hasPort = !strings.HasSuffix(h, "]")
	}
	if !hasPort {
		h = net.JoinHostPort(strings.Trim(h, "[]"), defaultSentinelPort)
	}
	host, port, err := net.SplitHostPort(h)
	if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("Sentinel address %q is not host:port", h)
	}
	return net.JoinHostPort(host, port), nil
}

// knobs points at the fields of one go-redis option struct that Options
// and workq's defaults set.
type knobs struct {
	password          *string
	tls               **tls.Config
	pool, retries     *int
	dial, read, write *time.Duration
}

// settle applies o over the URL's values, and the URL's over the defaults.
func settle(o Options, raw string, k knobs) error {
	if o.Password != "" {
		*k.password = o.Password
	}
	if o.TLSConfig != nil {
		parsed := *k.tls
		if parsed == nil {
			return badURL(raw, "a TLS configuration (a CA) was given for a plain connection: use rediss:// (or rediss+sentinel://) to connect with TLS")
		}
		c := o.TLSConfig.Clone()
		c.ServerName = cmp.Or(c.ServerName, parsed.ServerName)
		c.InsecureSkipVerify = c.InsecureSkipVerify || parsed.InsecureSkipVerify
		c.MinVersion = max(c.MinVersion, tls.VersionTLS12)
		*k.tls = c
	}
	*k.pool = cmp.Or(o.PoolSize, *k.pool)
	*k.retries = cmp.Or(*k.retries, defaultDialRetries)
	*k.dial = cmp.Or(o.DialTimeout, *k.dial, DefaultDialTimeout)
	*k.read = cmp.Or(o.ReadTimeout, *k.read, DefaultReadTimeout)
	*k.write = cmp.Or(o.WriteTimeout, *k.write, DefaultWriteTimeout)
	return nil
}

// urlProblem explains a url.Parse error. Its text quotes the URL, and its
// inner error can quote part of a password that holds a / ? or #, so it is
// shown only when the URL has no userinfo.
func urlProblem(raw string, err error) string {
	var ue *url.Error
	if strings.Contains(raw, "@") || !errors.As(err, &ue) {
		return "it is not a valid URL; percent-encode special characters of the user name and password (@ as %40, : as %3A, / as %2F, ? as %3F, # as %23)"
	}
	return "it is not a valid URL: " + ue.Err.Error()
}

// driverProblem is a go-redis parse error without its "redis: " prefix and
// without the URL's password.
func driverProblem(err error, u *url.URL) string {
	pw, _ := u.User.Password()
	return scrub(strings.TrimPrefix(err.Error(), "redis: "), pw, u.Query().Get("password"))
}

// scrub replaces every non-empty secret in msg.
func scrub(msg string, secrets ...string) string {
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, redacted)
		}
	}
	return msg
}

// redacted replaces passwords, as url.URL.Redacted does.
const redacted = "xxxxx"

// Redact returns raw with every password replaced by "xxxxx": the userinfo's
// and the value of any query parameter whose name contains "password". A
// string that does not parse as one of the URL forms (a password with an
// unescaped / ? or #) loses everything before its last "@". It is for logs
// and errors.
func Redact(raw string) string {
	prefix, rest := "", raw
	if i := strings.Index(raw, "://"); i >= 0 {
		prefix, rest = raw[:i+3], raw[i+3:]
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], redactParams(rest[end:])
	if at := strings.LastIndex(tail, "@"); at >= 0 {
		// The userinfo ran past a / ? or #: no telling where it ends.
		return prefix + redacted + tail[at:]
	}
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		if name, _, hasPassword := strings.Cut(authority[:at], ":"); hasPassword {
			authority = name + ":" + redacted + authority[at:]
		}
	}
	return prefix + authority + tail
}

// redactParams replaces the values of password parameters in a URL's
// path-query-fragment tail.
func redactParams(tail string) string {
	path, query, ok := strings.Cut(tail, "?")
	if !ok {
		return tail
	}
	params := strings.Split(query, "&")
	for i, p := range params {
		k, _, _ := strings.Cut(p, "=")
		if name, err := url.QueryUnescape(k); err == nil && strings.Contains(strings.ToLower(name), "password") ||
			strings.Contains(strings.ToLower(k), "password") {
			params[i] = k + "=" + redacted
		}
	}
	return path + "?" + strings.Join(params, "&")
}
