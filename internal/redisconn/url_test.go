package redisconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The workq defaults every form gets when neither Options nor the URL set them.
func requireDefaults(t *testing.T, dial, read, write time.Duration, retries int) {
	t.Helper()
	require.Equal(t, DefaultDialTimeout, dial)
	require.Equal(t, DefaultReadTimeout, read)
	require.Equal(t, DefaultWriteTimeout, write)
	require.Equal(t, 1, retries)
}

func TestParseSingle(t *testing.T) {
	t.Parallel()
	t.Run("EmptyURLIsTheDefault", func(t *testing.T) {
		t.Parallel()
		tg, err := parse(Options{})
		require.NoError(t, err)
		require.Equal(t, Single, tg.kind)
		require.Equal(t, "127.0.0.1:6379", tg.single.Addr)
		require.Equal(t, 0, tg.single.DB)
		o := tg.single
		requireDefaults(t, o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.DialerRetries)
	})
	t.Run("UserPasswordHostPortDB", func(t *testing.T) {
		t.Parallel()
		tg, err := parse(Options{URL: "redis://alice:p%40ss@redis.example:7000/3"})
		require.NoError(t, err)
		o := tg.single
		require.Equal(t, "tcp", o.Network)
		require.Equal(t, "redis.example:7000", o.Addr)
		require.Equal(t, "alice", o.Username)
		require.Equal(t, "p@ss", o.Password)
		require.Equal(t, 3, o.DB)
		require.Nil(t, o.TLSConfig)
	})
	t.Run("PortDefaultsTo6379", func(t *testing.T) {
		t.Parallel()
		tg, err := parse(Options{URL: "redis://redis.example"})
		require.NoError(t, err)
		require.Equal(t, "redis.example:6379", tg.single.Addr)
	})
	t.Run("RedissIsTLSCheckedAgainstTheHost", func(t *testing.T) {
		t.Parallel()
		tg, err := parse(Options{URL: "rediss://redis.example:6380/0"})
		require.NoError(t, err)
		require.NotNil(t, tg.single.TLSConfig)
		require.Equal(t, "redis.example", tg.single.TLSConfig.ServerName)
		require.False(t, tg.single.TLSConfig.InsecureSkipVerify)
		require.Equal(t, uint16(tls.VersionTLS12), tg.single.TLSConfig.MinVersion)
	})
	t.Run("UnixSocketWithDB", func(t *testing.T) {
		t.Parallel()
		tg, err := parse(Options{URL: "unix:///run/redis/redis.sock?db=2"})
		require.NoError(t, err)
		require.Equal(t, "unix", tg.single.Network)
		require.Equal(t, "/run/redis/redis.sock", tg.single.Addr)
		require.Equal(t, 2, tg.single.DB)
	})
	t.Run("UnixSocketWithPassword", func(t *testing.T) {
		t.Parallel()
		tg, err := parse(Options{URL: "unix://:secret@/run/redis.sock"})
		require.NoError(t, err)
		require.Equal(t, "secret", tg.single.Password)
	})
	t.Run("OptionsOverrideTheURL", func(t *testing.T) {
		t.Parallel()
		tg, err := parse(Options{
			URL:      "redis://alice:old@h:1/0?dial_timeout=1s&read_timeout=2s&write_timeout=3s&pool_size=4",
			Password: "new", PoolSize: 40, DialTimeout: 7 * time.Second, ReadTimeout: 8 * time.Second, WriteTimeout: 9 * time.Second,
		})
		require.NoError(t, err)
		o := tg.single
		require.Equal(t, "alice", o.Username)
		require.Equal(t, "new", o.Password)
		require.Equal(t, 40, o.PoolSize)
		require.Equal(t, 7*time.Second, o.DialTimeout)
		require.Equal(t, 8*time.Second, o.ReadTimeout)
		require.Equal(t, 9*time.Second, o.WriteTimeout)
	})
	t.Run("URLParametersOverrideTheDefaults", func(t *testing.T) {
		t.Parallel()
		tg, err := parse(Options{URL: "redis://h:1/0?dial_timeout=2&read_timeout=0&pool_size=4&max_retries=6"})
		require.NoError(t, err)
		o := tg.single
		require.Equal(t, 2*time.Second, o.DialTimeout)
		require.Equal(t, time.Duration(-1), o.ReadTimeout, "0 disables the timeout, as in go-redis")
		require.Equal(t, DefaultWriteTimeout, o.WriteTimeout)
		require.Equal(t, 4, o.PoolSize)
		require.Equal(t, 6, o.MaxRetries)
		require.Equal(t, 1, o.DialerRetries)
	})
	t.Run("CustomTLSConfigKeepsTheHostName", func(t *testing.T) {
		t.Parallel()
		custom := &tls.Config{RootCAs: x509.NewCertPool()}
		tg, err := parse(Options{URL: "rediss://redis.example:6380/0?skip_verify=true", TLSConfig: custom})
		require.NoError(t, err)
		c := tg.single.TLSConfig
		require.Same(t, custom.RootCAs, c.RootCAs)
		require.Equal(t, "redis.example", c.ServerName)
		require.True(t, c.InsecureSkipVerify)
		require.Equal(t, uint16(tls.VersionTLS12), c.MinVersion)
		require.Empty(t, custom.ServerName, "the caller's config is not modified")
	})
}

func TestParseCluster(t *testing.T) {
	t.Parallel()
	t.Run("SeedsFromHostAndAddr", func(t *testing.T) {
		t.Parallel()
		tg, err := parse(Options{URL: "redis://alice:secret@h1:7000?addr=h2:7001&addr=h3:7002"})
		require.NoError(t, err)
		require.Equal(t, Cluster, tg.kind)
		o := tg.cluster
		require.Equal(t, []string{"h1:7000", "h2:7001", "h3:7002"}, o.Addrs)
		require.Equal(t, "alice", o.Username)
		require.Equal(t, "secret", o.Password)
		require.Nil(t, o.TLSConfig)
		requireDefaults(t, o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.DialerRetries)
	})
	t.Run("DBZeroIsAllowed", func(t *testing.T) {
		t.Parallel()
		for _, u := range []string{"redis://h1:7000/?addr=h2:7001", "redis://h1:7000/0?addr=h2:7001", "redis://h1:7000?addr=h2:7001&db=0"} {
			tg, err := parse(Options{URL: u})
			require.NoError(t, err, u)
			require.Equal(t, Cluster, tg.kind, u)
		}
	})
	t.Run("TLS", func(t *testing.T) {
		t.Parallel()
		tg, err := parse(Options{URL: "rediss://h1:7000?addr=h2:7001&skip_verify=true"})
		require.NoError(t, err)
		c := tg.cluster.TLSConfig
		require.NotNil(t, c)
		require.Equal(t, "h1", c.ServerName)
		require.True(t, c.InsecureSkipVerify)
		require.Equal(t, uint16(tls.VersionTLS12), c.MinVersion)
	})
	t.Run("OptionsApply", func(t *testing.T) {
		t.Parallel()
		custom := &tls.Config{RootCAs: x509.NewCertPool()}
		tg, err := parse(Options{URL: "rediss://:old@h1:7000?addr=h2:7001", Password: "new", PoolSize: 5, TLSConfig: custom})
		require.NoError(t, err)
		require.Equal(t, "new", tg.cluster.Password)
		require.Equal(t, 5, tg.cluster.PoolSize)
		require.Same(t, custom.RootCAs, tg.cluster.TLSConfig.RootCAs)
		require.Equal(t, "h1", tg.cluster.TLSConfig.ServerName)
	})
	t.Run("DetectedFromASingleNodeURL", func(t *testing.T) {
		t.Parallel()
		tg, err := parseCluster(Options{Password: "pw"}, "redis://alice@h1:7000/0?max_retries=5", true)
		require.NoError(t, err)
		require.Equal(t, []string{"h1:7000"}, tg.cluster.Addrs)
		require.Equal(t, "alice", tg.cluster.Username)
		require.Equal(t, "pw", tg.cluster.Password)
		require.Equal(t, 5, tg.cluster.MaxRetries)
	})
}

func TestParseSentinel(t *testing.T) {
	t.Parallel()
	t.Run("SentinelsMasterDBAndBothCredentials", func(t *testing.T) {
		t.Parallel()
		tg, err := parse(Options{URL: "redis+sentinel://alice:p%40ss@s1:5000,s2:5001,s3/mymaster/2?sentinel_username=sam&sentinel_password=s%26p"})
		require.NoError(t, err)
		require.Equal(t, Sentinel, tg.kind)
		o := tg.failover
		require.Equal(t, []string{"s1:5000", "s2:5001", "s3:26379"}, o.SentinelAddrs)
		require.Equal(t, "mymaster", o.MasterName)
		require.Equal(t, 2, o.DB)
		require.Equal(t, "alice", o.Username)
		require.Equal(t, "p@ss", o.Password)
		require.Equal(t, "sam", o.SentinelUsername)
		require.Equal(t, "s&p", o.SentinelPassword)
		require.Nil(t, o.TLSConfig)
		requireDefaults(t, o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.DialerRetries)
	})
	t.Run("OneSentinelNoCredentialsDB0", func(t *testing.T) {
		t.Parallel()
		tg, err := parse(Options{URL: "redis+sentinel://s1/mymaster"})
		require.NoError(t, err)
		o := tg.failover
		require.Equal(t, []string{"s1:26379"}, o.SentinelAddrs)
		require.Equal(t, 0, o.DB)
		require.Empty(t, o.Password)
		require.Empty(t, o.SentinelPassword)
	})
	t.Run("IPv6", func(t *testing.T) {
		t.Parallel()
		tg, err := parse(Options{URL: "redis+sentinel://[::1]:5000,[fd00::2]/m/"})
		require.NoError(t, err)
		require.Equal(t, []string{"[::1]:5000", "[fd00::2]:26379"}, tg.failover.SentinelAddrs)
	})
	t.Run("TLSAndTuning", func(t *testing.T) {
		t.Parallel()
		tg, err := parse(Options{URL: "rediss+sentinel://s1:5000,s2:5001/m?dial_timeout=2s&max_retries=7"})
		require.NoError(t, err)
		o := tg.failover
		require.NotNil(t, o.TLSConfig)
		require.Equal(t, "s1", o.TLSConfig.ServerName)
		require.Equal(t, 2*time.Second, o.DialTimeout)
		require.Equal(t, 7, o.MaxRetries)
	})
	t.Run("PasswordOptionIsThePrimarysOnly", func(t *testing.T) {
		t.Parallel()
		tg, err := parse(Options{URL: "redis+sentinel://:old@s1/m?sentinel_password=sp", Password: "new", PoolSize: 3})
		require.NoError(t, err)
		require.Equal(t, "new", tg.failover.Password)
		require.Equal(t, "sp", tg.failover.SentinelPassword)
		require.Equal(t, 3, tg.failover.PoolSize)
	})
}

func TestParseRefusesBadURLs(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t"
	plainWithCA := Options{URL: "redis://h:1/0", TLSConfig: &tls.Config{}}
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"NoScheme", Options{URL: "localhost:6379"}, "it has no scheme"},
		{"UnknownScheme", Options{URL: "http://h:1/0"}, `unknown scheme "http"`},
		{"BadPort", Options{URL: "redis://alice:" + secret + "@h:port/0"}, "percent-encode special characters"},
		{"UnescapedSlashInPassword", Options{URL: "redis://alice:s3c/r3t@h:1/0"}, "percent-encode special characters"},
		{"BadPortNoUserinfo", Options{URL: "redis://h:port/0"}, `invalid port ":port"`},
		{"BadDB", Options{URL: "redis://:" + secret + "@h:1/zero"}, `invalid database number: "zero"`},
		{"UnknownParameter", Options{URL: "redis://h:1/0?bogus=1"}, "unexpected option: bogus"},
		{"PasswordParameter", Options{URL: "redis://h:1/0?password=" + secret}, "unexpected option: password"},
		{"BadDuration", Options{URL: "redis://h:1/0?dial_timeout=soon"}, "invalid dial_timeout duration"},
		{"EmptyUnixPath", Options{URL: "unix://"}, "empty unix socket path"},
		{"MasterNameParameter", Options{URL: "redis://h:1?master_name=m"}, "redis+sentinel://sentinel1:26379"},
		{"ClusterOverUnix", Options{URL: "unix:///s?addr=h:1"}, "reached over TCP"},
		{"ClusterDB", Options{URL: "redis://h1:1/3?addr=h2:2"}, "has only db 0: remove /3"},
		{"ClusterDBParameter", Options{URL: "redis://h1:1?addr=h2:2&db=2"}, "has only db 0: remove /2"},
		{"ClusterBadAddr", Options{URL: "redis://:" + secret + "@h1:1?addr=h2"}, "unable to parse addr param: h2"},
		{"ClusterUnknownParameter", Options{URL: "redis://h1:1?addr=h2:2&bogus=1"}, "unexpected option: bogus"},
		{"ClusterBadSkipVerify", Options{URL: "rediss://h1:1?addr=h2:2&skip_verify=maybe"}, "skip_verify must be true or false"},
		{"SentinelNoMaster", Options{URL: "redis+sentinel://s1,s2"}, "it names no master"},
		{"SentinelEmptyMaster", Options{URL: "redis+sentinel://:" + secret + "@s1,s2/"}, "it names no master"},
		{"SentinelEmptyAddress", Options{URL: "redis+sentinel://s1,,s2/m"}, "empty Sentinel address"},
		{"SentinelNoHosts", Options{URL: "redis+sentinel:///m"}, "empty Sentinel address"},
		{"SentinelBadPort", Options{URL: "redis+sentinel://s1:port/m"}, `Sentinel address "s1:port" is not host:port`},
		{"SentinelPortOutOfRange", Options{URL: "redis+sentinel://s1:70000/m"}, `"s1:70000" is not host:port`},
		{"SentinelBadDB", Options{URL: "redis+sentinel://s1/m/one"}, `db "one" after the master name`},
		{"SentinelTooManyPathParts", Options{URL: "redis+sentinel://s1/m/1/2"}, `db "1/2" after the master name`},
		{"SentinelPasswordParameter", Options{URL: "redis+sentinel://s1/m?password=" + secret}, "password is not a parameter of redis+sentinel URLs"},
		{"SentinelMasterNameParameter", Options{URL: "redis+sentinel://s1/m?master_name=x"}, "master_name is not a parameter"},
		{"SentinelAddrParameter", Options{URL: "redis+sentinel://s1/m?addr=s2:1"}, "addr is not a parameter"},
		{"SentinelUnknownParameter", Options{URL: "redis+sentinel://:" + secret + "@s1/m?sentinel_password=" + secret + "&bogus=1"}, "unexpected option: bogus"},
		{"SentinelRoutesToReplicas", Options{URL: "redis+sentinel://s1/m?route_by_latency=true"}, "route_by_latency: workq sends every command to the primary"},
		{"SentinelReplicaOnly", Options{URL: "redis+sentinel://s1/m?replica_only=1"}, "replica_only: workq sends every command to the primary"},
		{"ClusterReadOnly", Options{URL: "redis://h1:1?addr=h2:2&read_only=true"}, "read_only: workq sends every command to the primary"},
		{"ClusterRouteRandomly", Options{URL: "redis://h1:1?addr=h2:2&route_randomly=true"}, "route_randomly:"},
		{"SentinelFragment", Options{URL: "redis+sentinel://:" + secret + "@s1/m#x"}, "a fragment"},
		{"SentinelBadEscape", Options{URL: "redis+sentinel://alice:%zz@s1/m"}, "bad %-escape"},
		{"TLSConfigWithPlainURL", plainWithCA, "use rediss://"},
		{"TLSConfigWithPlainSentinelURL", Options{URL: "redis+sentinel://s1/m", TLSConfig: &tls.Config{}}, "rediss+sentinel://"},
		{"TLSConfigWithPlainClusterURL", Options{URL: "redis://h1:1?addr=h2:2", TLSConfig: &tls.Config{}}, "use rediss://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := parse(tc.o)
			require.Error(t, err)
			require.True(t, errors.Is(err, ErrBadURL), "%v", err)
			msg := err.Error()
			require.Contains(t, msg, tc.want)
			require.Contains(t, msg, "redis+sentinel://[user[:password]@]host:port", "the message lists the accepted forms")
			for _, leak := range []string{secret, "s3c", "r3t"} {
				require.NotContains(t, msg, leak)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"},
		{"redis://alice@h:1/0", "redis://alice@h:1/0"},
		{"redis://alice:secret@h:1/0", "redis://alice:xxxxx@h:1/0"},
		{"redis://:secret@h:1/0", "redis://:xxxxx@h:1/0"},
		{"redis://:secret@h:1", "redis://:xxxxx@h:1"},
		{"rediss://alice:p%40ss@h:1/2?skip_verify=true", "rediss://alice:xxxxx@h:1/2?skip_verify=true"},
		{"unix://:secret@/run/redis.sock?db=1", "unix://:xxxxx@/run/redis.sock?db=1"},
		{"unix:///run/redis.sock?db=1", "unix:///run/redis.sock?db=1"},
		{"redis://alice:secret@h1:1?addr=h2:2&addr=h3:3", "redis://alice:xxxxx@h1:1?addr=h2:2&addr=h3:3"},
		{"rediss://:secret@h1:1/?addr=h2:2", "rediss://:xxxxx@h1:1/?addr=h2:2"},
		{"redis+sentinel://alice:secret@s1:1,s2:2,[::1]:3/m/1?sentinel_password=other&dial_timeout=1s",
			"redis+sentinel://alice:xxxxx@s1:1,s2:2,[::1]:3/m/1?sentinel_password=xxxxx&dial_timeout=1s"},
		{"rediss+sentinel://s1/m?sentinel_username=sam&sentinel%5Fpassword=other",
			"rediss+sentinel://s1/m?sentinel_username=sam&sentinel%5Fpassword=xxxxx"},
		{"redis://h:1/0?password=secret", "redis://h:1/0?password=xxxxx"},
		// A userinfo with an unescaped @ still ends at the last @ before the host.
		{"redis://alice:p@ss@h:1/0", "redis://alice:xxxxx@h:1/0"},
		// A password with an unescaped / ? or #: all before the last @ goes.
		{"redis://alice:se/cret@h:1/0", "redis://xxxxx@h:1/0"},
		{"redis://alice:se?cret@h:1/0", "redis://xxxxx@h:1/0"},
		{"redis://alice:se#cret@h:1/0", "redis://xxxxx@h:1/0"},
		{"redis+sentinel://alice:se/cret@s1,s2/m", "redis+sentinel://xxxxx@s1,s2/m"},
		{"alice:secret@h:1", "alice:xxxxx@h:1"},
		{"", ""},
	} {
		require.Equal(t, tc.want, Redact(tc.in), tc.in)
		require.NotContains(t, Redact(tc.in), "secret", tc.in)
		require.NotContains(t, Redact(tc.in), "cret", tc.in)
	}
}
