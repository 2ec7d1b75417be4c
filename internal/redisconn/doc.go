// Package redisconn turns workq's Redis settings (a URL, a password, a TLS
// configuration) into a go-redis client for a single Redis, a Redis Cluster
// or a primary watched by Redis Sentinel.
//
// # Redis URLs
//
// A single Redis:
//
//	redis://[user[:password]@]host[:port][/db]
//	rediss://[user[:password]@]host[:port][/db]        TLS
//	unix://[user[:password]@]/path/to/redis.sock[?db=N]
//
// The port defaults to 6379 and db to 0. When that Redis turns out to be a
// node of a Redis Cluster (its HELLO reply says mode "cluster"), workq
// connects to the whole cluster through it: a single address, such as a
// Kubernetes Service in front of the cluster, is enough.
//
// A Redis Cluster, from two or more seed nodes (the others are discovered):
//
//	redis://[user[:password]@]host:port?addr=host2:port2[&addr=host3:port3...]
//	rediss://...                                         TLS
//
// A cluster has only db 0: a URL that names another db is refused.
//
// A primary watched by Redis Sentinel:
//
//	redis+sentinel://[user[:password]@]host:port[,host:port...]/MASTER[/db][?sentinel_username=U&sentinel_password=P]
//	rediss+sentinel://...                                TLS, to the Sentinels and to Redis
//
// The hosts are the Sentinels (port default 26379) and MASTER is the name
// they monitor (`sentinel monitor MASTER ...`). The user and password are
// those of the Redis primary; sentinel_username and sentinel_password, when
// the Sentinels require them, are theirs. workq asks the Sentinels for the
// primary and follows it through failovers.
//
// In every form, special characters in a user name or password must be
// percent-encoded (@ as %40, : as %3A, / as %2F). The query may also hold
// go-redis's tuning parameters (such as dial_timeout=3s, max_retries=5,
// skip_verify=true); unknown parameters are refused, and so are those that
// send commands to replicas (read_only, replica_only, route_by_latency,
// route_randomly): workq reads what it has just written.
//
// # Passwords and TLS
//
// Options.Password (WORKQ_REDIS_PASSWORD) overrides the password of the
// URL; for Sentinel it is the primary's password, not the Sentinels'.
// Options.TLSConfig (a custom CA, client certificates) replaces the default
// TLS settings of a rediss:// or rediss+sentinel:// URL; it is refused with
// a plain URL rather than ignored. Servers' certificates are checked against
// the URL's first host name unless TLSConfig sets ServerName.
//
// Errors and Info never show a password: Redact replaces it, in the
// userinfo and in any query parameter whose name contains "password".
package redisconn
