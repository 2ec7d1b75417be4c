package queue

import (
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Sentinel errors of pkg/queue. Callers test them with errors.Is.
var (
	// ErrNoJob: the Job does not exist (never created, deleted or expired).
	ErrNoJob = errors.New("queue: no such job")
	// ErrExists: Create found a Job of that name.
	ErrExists = errors.New("queue: job already exists")
	// ErrSealed: the Job is sealed; it takes no more items.
	ErrSealed = errors.New("queue: job is sealed")
	// ErrFinished: the Job is Complete, Failing or Failed.
	ErrFinished = errors.New("queue: job is finished")
	// ErrDrained: the Job is drained; the worker must exit 0.
	ErrDrained = errors.New("queue: job is drained")
	// ErrJobFailed: the Job is failing or failed; the worker must stop.
	ErrJobFailed = errors.New("queue: job failed")
	// ErrInvalidItem: an item is empty, too large or not valid in its format.
	ErrInvalidItem = errors.New("queue: invalid item")
	// ErrUnavailable: Redis cannot be reached or refused the credentials.
	ErrUnavailable = errors.New("queue: redis unavailable")
	// ErrAuth: Redis refused the credentials or the ACL user's rights. It
	// wraps ErrUnavailable, and unlike a connection failure it does not
	// pass by waiting.
	ErrAuth = fmt.Errorf("%w: credentials refused", ErrUnavailable)
	// ErrOutOfMemory: Redis is at maxmemory and refuses writes.
	ErrOutOfMemory = errors.New("queue: redis is out of memory")
)

// scriptError maps a script's error reply (NOJOB, SEALED, FINISHED) and
// Redis's own refusals to the sentinels above. Every script call goes
// through it, so redis.Nil and raw replies never leak out of the package.
func scriptError(job string, err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "NOJOB"):
		return fmt.Errorf("%w: %q; create it with `coordinator create %s`", ErrNoJob, job, job)
	case strings.Contains(msg, "SEALED"):
		return fmt.Errorf("%w: %q takes no more items; create a new Job for more work", ErrSealed, job)
	case strings.Contains(msg, "FINISHED"):
		return fmt.Errorf("%w: %q has ended; create a new Job, or `coordinator retry %s` to rerun its dead items", ErrFinished, job, job)
	case strings.HasPrefix(msg, "OOM"):
		return fmt.Errorf("%w: %s; raise maxmemory or drain the queue, then push again", ErrOutOfMemory, msg)
	case errors.Is(err, redis.Nil):
		return fmt.Errorf("%w: %q", ErrNoJob, job)
	}
	return classify(err)
}

// classify turns connection and authentication failures into
// ErrUnavailable with a hint; other errors pass through unchanged.
func classify(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "WRONGPASS"), strings.HasPrefix(msg, "NOAUTH"), strings.Contains(msg, "invalid password"), strings.Contains(msg, "invalid username-password"):
		return fmt.Errorf("%w: authentication failed (%s); check the password in --redis or WORKQ_REDIS_PASSWORD", ErrAuth, redact(msg))
	case strings.HasPrefix(msg, "NOPERM"):
		return fmt.Errorf("%w: permission denied (%s); grant the workq ACL (see docs/SECURITY.md)", ErrAuth, msg)
	case strings.HasPrefix(msg, "OOM"):
		return fmt.Errorf("%w: %s; raise maxmemory or drain the queue", ErrOutOfMemory, msg)
	case strings.Contains(msg, "x509:"):
		return fmt.Errorf("%w: %s; give the CA that signed Redis's certificate with --redis-ca FILE (WORKQ_REDIS_CA)", ErrUnavailable, redact(msg))
	case strings.Contains(msg, "connection refused"), strings.Contains(msg, "no such host"),
		strings.Contains(msg, "i/o timeout"), strings.Contains(msg, "connection reset"),
		strings.Contains(msg, "broken pipe"), strings.Contains(msg, "EOF"),
		strings.Contains(msg, "network is unreachable"), strings.Contains(msg, "tls:"),
		strings.Contains(msg, "x509:"), strings.Contains(msg, "LOADING"):
		return fmt.Errorf("%w: %s; check that Redis runs and that --redis (WORKQ_REDIS_URL) points to it", ErrUnavailable, redact(msg))
	}
	return err
}

// redact removes anything that looks like a URL's password from msg.
func redact(msg string) string {
	if i := strings.Index(msg, "://"); i >= 0 {
		if at := strings.Index(msg[i:], "@"); at > 0 {
			return msg[:i+3] + "***" + msg[i+at:]
		}
	}
	return msg
}
