package security_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/redistest"
	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/queue"
)

// aclCommands are the only commands workq runs: the scripts (EVAL is the
// fallback after a restarted Redis forgot them) and what they call, the
// few reads, stream reads and pub/sub calls made from Go, and INFO (workq
// checks at connect that Redis will not evict its keys). HELLO and AUTH
// need no grant. docs/SECURITY.md should quote this line.
const aclCommands = "-@all +ping +time +info " +
	"+evalsha +eval +script|load " +
	"+exists +del +unlink +pexpire +persist " +
	"+hget +hmget +hset +hsetnx +hdel +hgetall +hscan +hincrby +hkeys +hlen +hexists " +
	"+sadd " +
	"+rpush +lpop +llen +blmove " +
	"+zadd +zrem +zscore +zcard +zcount +zrange +zrangebyscore +zrevrangebyscore +zremrangebyscore +zpopmin " +
	"+xadd +xrange +xread +wait " +
	"+publish +subscribe +unsubscribe"

// aclLine is the whole ACL rule of a workq user (with its password).
func aclLine(user, password string) string {
	return fmt.Sprintf("user %s on >%s resetkeys ~workq:* resetchannels &workq:* %s", user, password, aclCommands)
}

const (
	adminPassword = "admin-pw-9f1c"
	workqPassword = "workq-pw-42ab"
)

// TestACLUserRunsEverything runs every command of both binaries as a user
// that may touch only workq:* keys and channels with only aclCommands, and
// checks that Redis denied nothing, and that the user cannot run KEYS,
// FLUSHALL or CONFIG.
func TestACLUserRunsEverything(t *testing.T) {
	redistest.Available(t)
	dir := t.TempDir()
	acl := filepath.Join(dir, "users.acl")
	require.NoError(t, os.WriteFile(acl, []byte(fmt.Sprintf("user default on >%s ~* &* +@all\n%s\n",
		adminPassword, aclLine("workq", workqPassword))), 0o600))
	srv, err := redistest.Start(dir, "--aclfile", acl)
	require.NoError(t, err)
	t.Cleanup(srv.Stop)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: adminPassword})
	t.Cleanup(func() { _ = admin.Close() })
	ctx := context.Background()

	url := fmt.Sprintf("redis://workq:%s@%s/0", workqPassword, srv.Addr)
	c := newCLI(t, "WORKQ_REDIS_URL="+url)
	bins := testkit.Build(t)
	co, wk := bins.Coordinator, bins.Worker

	t.Run("EveryCommandWorksAsTheUser", func(t *testing.T) {
		c.t = t
		httpAddr := testkit.FreeAddr(t)
		serve := c.start("serve", co, "serve", "--listen", httpAddr, "--interval", "100ms", "--token", "tok-1")
		testkit.WaitHealthy(t, httpAddr, serve)

		c.run(0, co, "create", "acl", "--lease", "3s", "--max-attempts", "1", "--batch-size", "2")
		c.run(0, co, "push", "acl", "a", "b", "c", "fail-me")
		items := filepath.Join(dir, "items.txt")
		require.NoError(t, os.WriteFile(items, []byte("d\ne\nd\n"), 0o644))
		c.run(0, co, "push", "acl", "-f", items, "--dedupe")
		c.run(0, co, "list")
		c.run(0, co, "status", "acl")
		c.run(0, co, "status", "acl", "-o", "json")
		c.run(0, co, "suspend", "acl")
		c.run(0, co, "resume", "acl")
		c.run(0, co, "seal", "acl")
		// One item is dead: the Job fails, and so does its worker.
		c.run(1, wk, "--job", "acl", "--metrics-listen", testkit.FreeAddr(t), "--results", "100", "--", "sh", "-c", `test "$1" != fail-me`, "sh", "{}")
		c.run(1, co, "watch", "acl", "--interval", "50ms")
		r := c.run(0, co, "dead", "acl")
		require.Contains(t, r.Stdout, "fail-me")
		// The results stream, through the public API (no command reads it).
		qc, err := queue.Open(ctx, queue.Options{URL: url})
		require.NoError(t, err)
		t.Cleanup(func() { _ = qc.Close() })
		res, err := qc.Inspector().Results(ctx, "acl", "", 100, 0)
		require.NoError(t, err)
		require.Len(t, res, 6, "one result per item run: a, b, c, fail-me, d, e")
		more, err := qc.Inspector().Results(ctx, "acl", res[len(res)-1].Seq, 100, 50*time.Millisecond)
		require.NoError(t, err)
		require.Empty(t, more)
		c.run(0, co, "retry", "acl", "--reopen")
		// As after a Redis restart: the worker finds no scripts and EVALs them.
		require.NoError(t, admin.ScriptFlush(ctx).Err())
		c.run(0, wk, "--job", "acl", "--batch-exec", "--", "cat")
		c.run(0, co, "watch", "acl", "--interval", "50ms")

		// The dashboard, its API, its changes (with the token) and /metrics.
		c.run(0, co, "create", "acl-web")
		for _, path := range []string{"/", "/jobs/acl", "/api/jobs", "/api/jobs/acl", "/metrics", "/healthz"} {
			code, body := get(t, "http://"+httpAddr+path)
			require.Equal(t, 200, code, "%s: %s", path, body)
			c.all.WriteString(body)
		}
		for _, action := range []string{"suspend", "resume", "retry"} {
			code, body := do(t, "POST", "http://"+httpAddr+"/api/jobs/acl-web/"+action, "tok-1")
			require.Equal(t, 200, code, "%s: %s", action, body)
		}
		code, body := do(t, "DELETE", "http://"+httpAddr+"/api/jobs/acl-web", "tok-1")
		require.Equal(t, 200, code, body)

		// run, with its workers, against the same Redis as that user.
		c.runIn(0, strings.NewReader("x\ny\nz\n"), co, "run", "--redis", url, "--job", "acl-run", "-p", "2", "--", "cat")
		c.run(0, co, "delete", "acl")
		c.run(0, co, "delete", "acl-run")
		c.stop(serve)

		require.NotContains(t, c.all.String(), "NOPERM")
		require.NotContains(t, c.all.String(), "permission denied")
		entries, err := admin.Do(ctx, "ACL", "LOG").Slice()
		require.NoError(t, err)
		require.Empty(t, entries, "Redis denied nothing to the workq user: %v", entries)
	})

	t.Run("UserCannotRunKeysFlushallOrConfig", func(t *testing.T) {
		user := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: "workq", Password: workqPassword})
		t.Cleanup(func() { _ = user.Close() })
		require.NoError(t, user.Ping(ctx).Err())
		for _, cmd := range [][]any{{"KEYS", "*"}, {"FLUSHALL"}, {"FLUSHDB"}, {"CONFIG", "GET", "*"}, {"CONFIG", "SET", "maxmemory", "1"},
			{"SCAN", "0"}, {"ACL", "LIST"}, {"SHUTDOWN"}, {"SCRIPT", "FLUSH"}} {
			err := user.Do(ctx, cmd...).Err()
			require.Error(t, err, "%v", cmd)
			require.Contains(t, err.Error(), "NOPERM", "%v", cmd)
		}
		require.ErrorContains(t, user.Set(ctx, "other:key", "x", 0).Err(), "NOPERM", "keys outside workq:* are out of reach")
		require.ErrorContains(t, user.Get(ctx, "other:key").Err(), "NOPERM")
		// HSET and EXISTS are granted, but not on other keys.
		require.ErrorContains(t, user.HSet(ctx, "other:key", "f", "x").Err(), "NOPERM", "keys outside workq:* are out of reach")
		require.ErrorContains(t, user.Eval(ctx, "return redis.call('EXISTS', 'other:key')", nil).Err(), "can't access",
			"scripts run with the user's permissions")
		require.ErrorContains(t, user.Publish(ctx, "other-channel", "x").Err(), "NOPERM")
	})

	t.Run("DocsQuoteTheLine", func(t *testing.T) {
		doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "SECURITY.md"))
		require.NoError(t, err)
		require.Contains(t, string(doc), aclLine("workq", "CHANGE-ME"), "docs/SECURITY.md quotes the tested ACL line")
	})

	t.Run("TheLineCoversEveryCommandTheScriptsCall", func(t *testing.T) {
		files, err := filepath.Glob(filepath.Join("..", "..", "internal", "store", "lua", "*.lua"))
		require.NoError(t, err)
		require.NotEmpty(t, files, "the store's scripts")
		var src []byte
		for _, f := range files {
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			src = append(src, b...)
		}
		// Every call names its command, or passes it to a helper that does
		// (chunked('ZREM', key, list)).
		calls := regexp.MustCompile(`(?:redis\.p?call|chunked)\('([A-Za-z]+)'`).FindAllStringSubmatch(string(src), -1)
		require.NotEmpty(t, calls)
		dynamic := regexp.MustCompile(`redis\.p?call\(\s*[^'\s]`).FindAllString(string(src), -1)
		require.Len(t, dynamic, 1, "one call takes its command from a variable: chunked's, whose callers are matched above: %v", dynamic)
		allowed := map[string]bool{}
		for _, f := range strings.Fields(aclCommands) {
			allowed[strings.TrimPrefix(f, "+")] = true
		}
		var missing []string
		for _, m := range calls {
			if cmd := strings.ToLower(m[1]); !allowed[cmd] {
				missing = append(missing, cmd)
			}
		}
		sort.Strings(missing)
		require.Empty(t, missing, "scripts call commands the ACL line does not allow")
	})
}
