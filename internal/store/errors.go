package store

import (
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Sentinel errors of the store; pkg/queue publishes them. Callers test them
// with errors.Is. Their texts say what happened, not what to type: the CLI
// adds that.
var (
	// ErrNoJob: the Job does not exist (never created, deleted, expired,
	// flushed, or lost in a Redis restart without data).
	ErrNoJob = errors.New("no such job")
	// ErrReplaced: the Job was deleted and created again under the same
	// name since this caller bound to it; the new one is not its business.
	ErrReplaced = errors.New("job was replaced by a new job of the same name")
	// ErrStateLost: the Job's state in Redis is gone or its books do not add
	// up (keys evicted): it can only fail.
	ErrStateLost = errors.New("job state lost in redis")
	// ErrExists: Create found a Job of that name.
	ErrExists = errors.New("job already exists")
	// ErrSealed: the Job is sealed; it takes no more items.
	ErrSealed = errors.New("job is sealed")
	// ErrFinished: the Job is Complete, Failing, Succeeding or Failed.
	ErrFinished = errors.New("job is finished")
	// ErrStale: a late copy of a call that was already answered; nothing
	// was changed.
	ErrStale = errors.New("stale request")
	// ErrUnavailable: Redis cannot be reached.
	ErrUnavailable = errors.New("redis unavailable")
	// ErrAuth: Redis refused the credentials or the ACL user's rights. It
	// wraps ErrUnavailable, and unlike a connection failure it does not
	// pass by waiting.
	ErrAuth = fmt.Errorf("%w: credentials refused", ErrUnavailable)
	// ErrOutOfMemory: Redis is at maxmemory and refuses writes.
	ErrOutOfMemory = errors.New("redis is out of memory")
	// ErrEviction: Redis may evict workq's keys (its maxmemory-policy is
	// not noeviction).
	ErrEviction = errors.New("redis may evict keys")
	// ErrReply: a reply of an unexpected shape (a bug, or not a workq key).
	ErrReply = errors.New("unexpected reply from redis")
)

// scriptCodes maps the first word of a script's error reply to its sentinel.
var scriptCodes = map[string]error{
	"NOJOB":    ErrNoJob,
	"REPLACED": ErrReplaced,
	"LOST":     ErrStateLost,
	"SEALED":   ErrSealed,
	"FINISHED": ErrFinished,
	"STALE":    ErrStale,
}

// mapError turns a script's error reply and Redis's own refusals into the
// sentinels above. Every call of the store goes through it, so redis.Nil
// and raw replies never leak out.
func mapError(err error) error {
	if err == nil {
		return nil
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := strings.TrimPrefix(rerr.Error(), "ERR ")
		code, detail, _ := strings.Cut(msg, " ")
		if s, ok := scriptCodes[code]; ok {
			if detail != "" && !strings.Contains(s.Error(), detail) && code == "STALE" {
				return fmt.Errorf("%w: %s", s, detail)
			}
			return s
		}
	}
	return classify(err)
}

// classify turns connection and authentication failures into
// ErrUnavailable; other errors pass through unchanged.
func classify(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "WRONGPASS"), strings.Contains(msg, "NOAUTH"), strings.Contains(msg, "invalid password"), strings.Contains(msg, "invalid username-password"):
		return fmt.Errorf("%w: authentication failed (%s)", ErrAuth, Redact(msg))
	case strings.Contains(msg, "NOPERM"):
		return fmt.Errorf("%w: permission denied (%s)", ErrAuth, msg)
	case strings.HasPrefix(msg, "OOM"):
		return fmt.Errorf("%w: %s", ErrOutOfMemory, msg)
	case strings.Contains(msg, "connection refused"), strings.Contains(msg, "no such host"),
		strings.Contains(msg, "i/o timeout"), strings.Contains(msg, "connection reset"),
		strings.Contains(msg, "broken pipe"), strings.Contains(msg, "EOF"),
		strings.Contains(msg, "network is unreachable"), strings.Contains(msg, "tls:"),
		strings.Contains(msg, "x509:"), strings.Contains(msg, "LOADING"),
		strings.Contains(msg, "CLUSTERDOWN"), strings.Contains(msg, "TRYAGAIN"),
		strings.Contains(msg, "MASTERDOWN"), strings.Contains(msg, "READONLY"),
		strings.Contains(msg, "redis: client is closed"), strings.Contains(msg, "pool timeout"),
		strings.Contains(msg, "all sentinels are unreachable"), strings.Contains(msg, "use of closed network connection"):
		return fmt.Errorf("%w: %s", ErrUnavailable, Redact(msg))
	}
	return err
}

// Redact removes anything that looks like a URL's password from msg.
func Redact(msg string) string {
	for i := 0; ; {
		j := strings.Index(msg[i:], "://")
		if j < 0 {
			return msg
		}
		start := i + j + 3
		end := len(msg)
		if k := strings.IndexAny(msg[start:], " \t\n\"'"); k >= 0 {
			end = start + k
		}
		if at := strings.LastIndex(msg[start:end], "@"); at >= 0 {
			msg = msg[:start] + "***" + msg[start+at:]
			end = start + 3 + (end - start - at)
		}
		i = end
	}
}

func replyErr(what string, v any) error {
	return fmt.Errorf("%w: %s: %v", ErrReply, what, v)
}
