package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/workq/workq/internal/cli"
	"github.com/workq/workq/internal/items"
	"github.com/workq/workq/internal/progress"
	"github.com/workq/workq/internal/store"
)

// pushFlags are the item-loading flags of push, create and run.
type pushFlags struct {
	file      string
	nul       bool
	seal      bool
	dedupe    bool
	stream    bool
	skipEmpty bool
	maxBytes  int
}

func (f *pushFlags) add(fs *pflag.FlagSet, forRun bool) {
	fs.StringVarP(&f.file, "file", "f", "", "read items from this file, one per line; - reads stdin")
	fs.BoolVar(&f.nul, "null", false, "items are separated by NUL bytes (they may hold newlines and any bytes), as from find -print0")
	fs.BoolVar(&f.dedupe, "dedupe", false, "skip items pushed to this Job before, so a re-push is a no-op")
	fs.BoolVar(&f.skipEmpty, "skip-empty", false, "skip empty items instead of refusing the input")
	fs.IntVar(&f.maxBytes, "max-item-bytes", items.DefaultMaxBytes, "largest item in bytes; a larger one refuses the whole input")
	if forRun {
		return
	}
	fs.BoolVar(&f.seal, "seal", false, "seal the Job after pushing: no more items, workers finish once it drains")
	fs.BoolVar(&f.stream, "stream", false, "push while reading, without checking the whole input first: for endless producers; a bad item stops the push with the items before it kept")
}

func (f *pushFlags) validate() error {
	if f.maxBytes < 1 || f.maxBytes > 512<<20 {
		return cli.Usagef("--max-item-bytes (%d) must be between 1 and %d", f.maxBytes, 512<<20)
	}
	return nil
}

func (f *pushFlags) options() items.Options {
	return items.Options{NUL: f.nul, MaxBytes: f.maxBytes, SkipEmpty: f.skipEmpty}
}

// source is checked input, ready to push: argument items, or a seekable
// file (the user's, or a spool of stdin) whose every item passed the checks.
type source struct {
	args  [][]byte
	file  *os.File
	spool bool
	count int64 // items, known after the check (-1 with --stream)
	live  io.Reader
}

func (s *source) empty() bool { return s.count == 0 }

func (s *source) Close() error {
	if s.file == nil {
		return nil
	}
	err := s.file.Close()
	if s.spool {
		_ = os.Remove(s.file.Name())
	}
	return err
}

// source reads and checks all input first, so that bad input is refused
// before anything reaches Redis: a regular file is read twice; stdin from
// a pipe is spooled to a temporary file while it is checked.
func (f *pushFlags) source(ctx context.Context, d deps, args []string) (*source, error) {
	o := f.options()
	if len(args) > 0 {
		if f.file != "" {
			return nil, cli.Usagef("give items as arguments or with -f, not both")
		}
		s := &source{}
		for i, a := range args {
			if err := items.Check(int64(i+1), []byte(a), o); err != nil {
				return nil, err
			}
			s.args = append(s.args, []byte(a))
		}
		s.count = int64(len(s.args))
		return s, nil
	}
	if f.file == "" {
		return &source{}, nil
	}
	var in *os.File
	if f.file == "-" {
		if r, ok := d.stdin.(*os.File); ok {
			in = r
		} else {
			return f.spoolReader(ctx, d.stdin)
		}
	} else {
		var err error
		if in, err = os.Open(f.file); err != nil {
			return nil, cli.Usagef("open items: %v", err)
		}
	}
	if f.stream {
		return &source{file: in, count: -1, live: in}, nil
	}
	st, err := in.Stat()
	if err == nil && st.Mode().IsRegular() {
		start, err := in.Seek(0, io.SeekCurrent)
		if err == nil {
			n, err := check(ctx, items.NewReader(in, o), nil)
			if err != nil {
				in.Close()
				return nil, err
			}
			if _, err := in.Seek(start, io.SeekStart); err != nil {
				in.Close()
				return nil, fmt.Errorf("rewind items: %w", err)
			}
			return &source{file: in, count: n}, nil
		}
	}
	return f.spoolReader(ctx, in)
}

func (f *pushFlags) spoolReader(ctx context.Context, r io.Reader) (*source, error) {
	if f.stream {
		return &source{count: -1, live: r}, nil
	}
	tmp, err := os.CreateTemp("", "workq-push-*")
	if err != nil {
		return nil, fmt.Errorf("spool stdin: %w", err)
	}
	n, err := check(ctx, items.NewReader(r, f.options()), tmp)
	if err == nil {
		_, err = tmp.Seek(0, io.SeekStart)
	}
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, err
	}
	return &source{file: tmp, spool: true, count: n}, nil
}

// check reads every item, checking it; with spool it writes the items,
// NUL-separated, to spool. It stops when ctx ends.
func check(ctx context.Context, r *items.Reader, spool io.Writer) (int64, error) {
	var n int64
	var w *bufWriter
	if spool != nil {
		w = newBufWriter(spool)
	}
	for {
		it, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, err
		}
		if n%4096 == 0 && ctx.Err() != nil {
			return n, fmt.Errorf("interrupted while reading the input; nothing was pushed")
		}
		n++
		if w != nil {
			if err := w.item(it); err != nil {
				return n, fmt.Errorf("spool stdin: %w", err)
			}
		}
	}
	if w != nil {
		if err := w.flush(); err != nil {
			return n, fmt.Errorf("spool stdin: %w", err)
		}
	}
	return n, nil
}

// bufWriter writes items NUL-separated.
type bufWriter struct{ w *bufio.Writer }

func newBufWriter(w io.Writer) *bufWriter { return &bufWriter{w: bufio.NewWriterSize(w, 256*1024)} }

func (b *bufWriter) item(it []byte) error {
	if _, err := b.w.Write(it); err != nil {
		return err
	}
	return b.w.WriteByte(0)
}

func (b *bufWriter) flush() error { return b.w.Flush() }

// reader returns the items of a checked source.
func (s *source) reader(o items.Options) *items.Reader {
	if s.live != nil {
		return items.NewReader(s.live, o)
	}
	if s.spool {
		// The spool holds checked items, NUL-separated.
		return items.NewReader(s.file, items.Options{NUL: true, MaxBytes: o.MaxBytes})
	}
	return items.NewReader(s.file, o)
}

// push streams a checked source into a Job in pipelined chunks, bound to
// the Job's incarnation, then checks that Redis holds what it appended.
func (f *pushFlags) push(cmd *cobra.Command, d deps, c *store.Store, job string, src *source) error {
	ctx := cmd.Context()
	uid, err := c.UID(ctx, job)
	if err != nil {
		return err
	}
	p := c.NewPusher(context.WithoutCancel(ctx), job, uid, store.PushOptions{Dedupe: f.dedupe})
	bar := progress.New(d.stderr, src.count, "pushing")
	var offered int64
	if src.args != nil {
		for _, it := range src.args {
			if err = p.Add(it); err != nil {
				break
			}
			offered++
		}
	} else {
		r := src.reader(f.options())
		for {
			it, rerr := r.Next()
			if errors.Is(rerr, io.EOF) {
				break
			}
			if rerr != nil {
				err = rerr
				break
			}
			if err = p.Add(it); err != nil {
				break
			}
			offered++
			if offered%8192 == 0 {
				bar.Set(p.Written())
				if ctx.Err() != nil {
					err = errors.New("interrupted")
					break
				}
			}
		}
	}
	written, perr := p.Close()
	bar.Set(written)
	bar.Finish()
	if err == nil {
		err = perr
	}
	if err != nil {
		if written > 0 {
			return fmt.Errorf("%w (%s pushed before it and stay in the Job)", err, wasWere(written))
		}
		return err
	}
	// What was appended must still be there: a Redis that evicts keys, or
	// lost them, is caught here rather than by a Job that ends too soon.
	st, err := c.Status(context.WithoutCancel(ctx), job)
	if err != nil {
		return fmt.Errorf("check the push: %w", err)
	}
	if st.UID != uid {
		return fmt.Errorf("%w: %q was deleted and created again while the push ran", store.ErrReplaced, job)
	}
	if st.StateLost != "" {
		return fmt.Errorf("%w: after the push, %s", store.ErrStateLost, st.StateLost)
	}
	msg := fmt.Sprintf("pushed %s to %s", plural(written, "item"), job)
	if f.dedupe && offered > written {
		msg += fmt.Sprintf(" (%d already pushed before, skipped)", offered-written)
	}
	if f.seal {
		if _, err := c.Seal(ctx, job, uid); err != nil {
			return err
		}
		msg += "; sealed"
	}
	fmt.Fprintln(d.stdout, msg)
	return nil
}

func newPushCmd(d deps) *cobra.Command {
	var pf pushFlags
	cmd := &cobra.Command{
		Use:   "push NAME [ITEM...]",
		Short: "Push items into a Job: arguments, or -f FILE (one per line, or --null separated)",
		Long: `Push items into a Job, in order. The input is read and checked in full first
(a pipe is spooled to a temporary file), so a bad item refuses the whole input
and leaves the Job as it was; --stream pushes while reading instead.
Items are pushed in pipelined chunks with bounded memory, any input size.

The pending list holds the raw item bytes, so any Redis client can load a Job:
  redis-cli RPUSH 'workq:{NAME}:pending' item1 item2`,
		Example: `  coordinator push thumbs -f items.txt
  find photos -name '*.jpg' -print0 | coordinator push thumbs --null -f -
  coordinator push thumbs a.jpg b.jpg --seal`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := cli.CheckName(name); err != nil {
				return err
			}
			if err := pf.validate(); err != nil {
				return err
			}
			if len(args) == 1 && pf.file == "" {
				return cli.Usagef("no items given; pass them as arguments, or -f FILE, or -f - for stdin")
			}
			c, err := d.open(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			// Refuse early when the Job cannot take items.
			st, err := c.Status(cmd.Context(), name)
			if err != nil {
				return suggest(cmd.Context(), c, name, err)
			}
			switch {
			case st.Phase.Stopping():
				return cli.WithHint(fmt.Errorf("%w: %q is %s", store.ErrFinished, name, st.Phase), "create a new Job for more work")
			case st.Sealed:
				return fmt.Errorf("%w: %q takes no more items", store.ErrSealed, name)
			}
			src, err := pf.source(cmd.Context(), d, args[1:])
			if err != nil {
				return err
			}
			defer src.Close()
			return pf.push(cmd, d, c, name, src)
		},
	}
	pf.add(cmd.Flags(), false)
	return cmd
}
