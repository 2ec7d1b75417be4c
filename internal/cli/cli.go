// Package cli holds what both binaries share: Redis flags and environment,
// exit codes, error wording, logging and output helpers.
package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

// Exit codes of both binaries.
const (
	ExitOK      = 0 // success
	ExitFailure = 1 // the Job failed, or a runtime error
	ExitUsage   = 2 // bad usage or bad input
)

// Version is set at build time with -ldflags "-X github.com/workq/workq/internal/cli.Version=...".
var Version = "dev"

// UsageError marks an error as the user's to fix: exit code 2.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError.
func Usagef(format string, a ...any) error { return UsageError{fmt.Errorf(format, a...)} }

// ExitCode maps an error to the exit code: input and usage errors are 2,
// everything else 1. A worker whose Job vanished or was replaced while it
// ran exits 1: that is no usage error.
func ExitCode(err error) int {
	var ue UsageError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, queue.ErrJobVanished), errors.Is(err, queue.ErrReplaced):
		return ExitFailure
	case errors.As(err, &ue),
		errors.Is(err, jobstate.ErrInvalidSpec),
		errors.Is(err, queue.ErrInvalidItem),
		errors.Is(err, queue.ErrNoJob),
		errors.Is(err, queue.ErrExists),
		errors.Is(err, queue.ErrSealed),
		errors.Is(err, queue.ErrFinished),
		errors.Is(err, queue.ErrBadURL):
		return ExitUsage
	}
	return ExitFailure
}

// oneLine folds cobra's multi-line messages ("Did you mean this?\n\tstatus")
// into one line: "...; did you mean status?".
func oneLine(msg string) string {
	head, rest, ok := strings.Cut(msg, "\n\nDid you mean this?\n")
	if !ok {
		return strings.Join(strings.Fields(msg), " ")
	}
	return head + "; did you mean " + strings.Join(strings.Fields(rest), " or ") + "?"
}

// hints say what to do about each sentinel error, in the CLI's words; the
// packages below speak only of what happened.
var hints = []struct {
	err  error
	hint string
}{
	{queue.ErrAuth, "check the password in --redis or WORKQ_REDIS_PASSWORD, and the ACL user's rights (docs/SECURITY.md)"},
	{queue.ErrUnavailable, "check that Redis runs and that --redis (WORKQ_REDIS_URL) points to it"},
	{queue.ErrEviction, "workq needs `maxmemory-policy noeviction` (CONFIG SET maxmemory-policy noeviction, or redis.conf); with another policy Redis deletes keys and items are lost"},
	{queue.ErrOutOfMemory, "raise Redis's maxmemory or drain the queue, then try again"},
	{queue.ErrNoJob, "`coordinator list` shows the Jobs that exist; `coordinator create NAME` makes one"},
	{queue.ErrExists, "pick another name, or `coordinator delete NAME` first"},
	{queue.ErrSealed, "create a new Job for more work"},
	{queue.ErrFinished, "a finished Job is final; create a new Job for more work"},
	{queue.ErrStateLost, "the Job fails with reason StateLost; set `maxmemory-policy noeviction` and create it again"},
}

// hinted is an error that says itself what to do, more precisely than the
// hint of its sentinel: Message adds its hint instead of the generic one.
type hinted struct {
	error
	hint string
}

func (h hinted) Unwrap() error { return h.error }

// WithHint returns err with hint as what to do about it, in place of the
// generic hint of its sentinel error; an empty hint means err says enough.
func WithHint(err error, hint string) error { return hinted{err, hint} }

// Message renders an error as the one line a user sees: what went wrong,
// then what to do.
func Message(err error) string {
	msg := err.Error()
	var own hinted
	if errors.As(err, &own) {
		if own.hint == "" {
			return msg
		}
		return msg + "; " + own.hint
	}
	for _, h := range hints {
		if errors.Is(err, h.err) {
			if strings.Contains(msg, "x509:") {
				return msg + "; give the CA that signed Redis's certificate with --redis-ca FILE (WORKQ_REDIS_CA)"
			}
			return msg + "; " + h.hint
		}
	}
	return msg
}

// Main runs a cobra root command and returns the process exit code,
// printing errors as one line to stderr.
func Main(ctx context.Context, root *cobra.Command, stderr io.Writer) int {
	store.SetDriverLogger(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	root.SilenceUsage = true
	root.SilenceErrors = true
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return Usagef("%v; see `%s --help`", err, c.CommandPath())
	})
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	if strings.HasPrefix(err.Error(), "unknown command") || strings.Contains(err.Error(), "accepts ") || strings.Contains(err.Error(), "requires at least") {
		err = UsageError{fmt.Errorf("%s; see `%s --help`", oneLine(err.Error()), cmd.CommandPath())}
	}
	name := root.Name()
	if cmd != nil && cmd.Name() == "worker" {
		name = "worker" // a worker that `coordinator run` started speaks as one
	}
	fmt.Fprintf(stderr, "%s: %s\n", name, Message(err))
	return ExitCode(err)
}

// Redis holds the Redis flags common to both binaries.
type Redis struct {
	URL string
	// CA is a PEM file of the CA certificates that TLS servers are checked
	// against instead of the system's (--redis-ca, WORKQ_REDIS_CA).
	CA string
}

// AddFlags adds --redis and --redis-ca, defaulting from the environment.
func (r *Redis) AddFlags(fs *pflag.FlagSet) {
	def := os.Getenv("WORKQ_REDIS_URL")
	if def == "" {
		def = queue.DefaultURL
	}
	fs.StringVar(&r.URL, "redis", def, "Redis URL (env WORKQ_REDIS_URL; the password may also come from WORKQ_REDIS_PASSWORD): "+
		"redis://[user[:password]@]host:port/db, rediss:// for TLS, redis://h1:p1?addr=h2:p2&addr=h3:p3 for a Redis Cluster, "+
		"redis+sentinel://h1:p1,h2:p2/MASTER for Sentinel")
	fs.StringVar(&r.CA, "redis-ca", os.Getenv("WORKQ_REDIS_CA"), "PEM file of the CA that signed Redis's TLS certificate, for rediss:// URLs (env WORKQ_REDIS_CA); default: the system's CAs")
}

// Options returns the connection settings for the flags and the
// environment, checked; errors are usage errors.
func (r *Redis) Options() (queue.Options, error) {
	o := queue.Options{URL: r.URL, Password: os.Getenv("WORKQ_REDIS_PASSWORD")}
	if r.CA != "" {
		pem, err := os.ReadFile(r.CA)
		if err != nil {
			return o, Usagef("--redis-ca: %v; give the PEM file of the CA that signed Redis's certificate", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return o, Usagef("--redis-ca %s holds no PEM certificate; give the CA's certificate, -----BEGIN CERTIFICATE-----", r.CA)
		}
		o.TLSConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if err := store.ValidateDial(dialOptions(o)); err != nil {
		return o, UsageError{err}
	}
	return o, nil
}

func dialOptions(o queue.Options) store.DialOptions {
	return store.DialOptions{URL: o.URL, Password: o.Password, TLSConfig: o.TLSConfig, PoolSize: o.PoolSize}
}

// Open connects, checks that Redis answers and will not evict workq's
// keys, and returns the store.
func (r *Redis) Open(ctx context.Context) (*store.Store, error) {
	o, err := r.Options()
	if err != nil {
		return nil, err
	}
	return store.Open(ctx, dialOptions(o))
}

// Dial returns a store that connects on first use and again after Redis
// went away, for long-running commands that must outlive a Redis restart.
func (r *Redis) Dial() (*store.Store, error) {
	o, err := r.Options()
	if err != nil {
		return nil, err
	}
	s, err := store.Dial(dialOptions(o))
	if err != nil {
		return nil, UsageError{err}
	}
	return s, nil
}

// Redacted is the --redis URL with its passwords hidden, for messages.
func (r *Redis) Redacted() string { return store.RedactURL(r.URL) }

// Logger returns a slog logger writing to w in "text" or "json".
func Logger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, Usagef("log level %q: use debug, info, warn or error", level)
	}
	o := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	}
	return nil, Usagef("log format %q: use text or json", format)
}

// CheckName validates a Job name as a usage error.
func CheckName(name string) error {
	if err := jobstate.ValidateName(name); err != nil {
		return UsageError{err}
	}
	return nil
}
