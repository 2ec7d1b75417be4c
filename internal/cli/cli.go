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
// everything else 1.
func ExitCode(err error) int {
	var ue UsageError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue),
		errors.Is(err, jobstate.ErrInvalidSpec),
		errors.Is(err, queue.ErrInvalidItem),
		errors.Is(err, queue.ErrNoJob),
		errors.Is(err, queue.ErrExists),
		errors.Is(err, queue.ErrSealed),
		errors.Is(err, queue.ErrFinished):
		return ExitUsage
	}
	return ExitFailure
}

// Message renders an error as the one line a user sees, without the
// package prefixes of sentinels.
func Message(err error) string {
	msg := err.Error()
	msg = strings.ReplaceAll(msg, "queue: ", "")
	return msg
}

// Main runs a cobra root command and returns the process exit code,
// printing errors as one line to stderr.
func Main(ctx context.Context, root *cobra.Command, stderr io.Writer) int {
	queue.SetDriverLogger(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
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
		err = UsageError{fmt.Errorf("%v; see `%s --help`", err, cmd.CommandPath())}
	}
	fmt.Fprintf(stderr, "%s: %s\n", root.Name(), Message(err))
	return ExitCode(err)
}

// Redis holds the Redis flags common to both binaries.
type Redis struct {
	URL string
	// CA is a PEM file of the CA certificates that rediss:// servers are
	// checked against instead of the system's (--redis-ca, WORKQ_REDIS_CA).
	CA string
}

// AddFlags adds --redis, defaulting from WORKQ_REDIS_URL.
func (r *Redis) AddFlags(fs *pflag.FlagSet) {
	def := os.Getenv("WORKQ_REDIS_URL")
	if def == "" {
		def = queue.DefaultURL
	}
	fs.StringVar(&r.URL, "redis", def, "Redis URL: redis://[user[:password]@]host:port/db, rediss:// for TLS (env WORKQ_REDIS_URL; the password may also come from WORKQ_REDIS_PASSWORD)")
	fs.StringVar(&r.CA, "redis-ca", os.Getenv("WORKQ_REDIS_CA"), "PEM file of the CA that signed Redis's TLS certificate, for rediss:// URLs (env WORKQ_REDIS_CA); default: the system's CAs")
}

// Options returns the queue options for the flags and the environment.
func (r *Redis) Options() (queue.Options, error) {
	o := queue.Options{URL: r.URL, Password: os.Getenv("WORKQ_REDIS_PASSWORD")}
	if _, err := queue.ParseURL(o.URL, o.Password); err != nil {
		return o, UsageError{err}
	}
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
	return o, nil
}

// Open connects and checks that Redis answers.
func (r *Redis) Open(ctx context.Context) (*queue.Client, error) {
	o, err := r.Options()
	if err != nil {
		return nil, err
	}
	return queue.Open(ctx, o)
}

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
