package workercmd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/workq/workq/pkg/queue"
)

// maxCapture caps each output stream (stdout, stderr) of one item kept in
// memory before it is written; past it, the rest is counted and dropped
// with a note, so one runaway item cannot exhaust the worker's memory.
const maxCapture = 8 << 20

// stderrTail is how much of an item's stderr becomes its error.
const stderrTail = 2048

// outputDelay is how long the output is still read after the command and
// its process group are gone, for a process outside the group (setsid, a
// daemon) that holds it open.
const outputDelay = 2 * time.Second

// Exec runs a command per item (or per batch), without a shell. The item
// goes to the command's stdin; an argument holding "{}" has it replaced by
// the item. The command's output is written whole when it ends, so outputs
// of concurrent items never interleave. When the command's main process
// exits, what is left of its process group is killed. Safe for concurrent
// use once set up.
type Exec struct {
	Argv    []string
	Timeout time.Duration // per item or batch; 0: none
	NUL     bool          // batch stdin: NUL-separated instead of lines
	// ResultBytes is how much of the end of an item's stdout goes to the
	// Job's results (worker --results). Default 0: none.
	ResultBytes int
	// PassRedisEnv passes the worker's WORKQ_REDIS_* variables (URL,
	// password, CA) to the command. Default false: they are removed.
	PassRedisEnv bool
	Out          *Output
	Log          *slog.Logger // warnings about an item's processes; nil: none

	baseEnv []string // the environment commands start from; nil: the worker's

	// Worked out at the first run, not at every one: what each costs is
	// paid per item, beside the fork and exec (the PATH search alone was
	// a few per cent of a `coordinator run -- true`).
	prep sync.Once
	path string   // Argv[0] found on PATH; "": not found (exec reports it)
	env  []string // environ()
}

// Output serialises whole outputs onto the worker's stdout and stderr,
// optionally framed for a parent `coordinator run` to demultiplex.
type Output struct {
	mu     sync.Mutex
	Stdout io.Writer
	Stderr io.Writer
	Framed bool
}

// Frame kinds of framed output: a byte, a big-endian uint32 length, data.
const (
	FrameStdout = 'o'
	FrameStderr = 'e'
)

func (o *Output) write(stdout, stderr *capped) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range []struct {
		kind byte
		dst  io.Writer
		out  *capped
	}{{FrameStdout, o.Stdout, stdout}, {FrameStderr, o.Stderr, stderr}} {
		kept, notes := s.out.parts()
		if len(kept)+len(notes) == 0 {
			continue
		}
		if o.Framed {
			var hdr [5]byte
			hdr[0] = s.kind
			binary.BigEndian.PutUint32(hdr[1:], uint32(len(kept)+len(notes)))
			_, _ = o.Stdout.Write(hdr[:])
			s.dst = o.Stdout
		}
		for _, b := range [][]byte{kept, notes} {
			if len(b) > 0 {
				_, _ = s.dst.Write(b)
			}
		}
	}
}

// Check fails early, as a usage error, when the command cannot run.
func (e *Exec) Check() error {
	if len(e.Argv) == 0 {
		return errors.New("no command given; put it after --, such as: worker --job thumbs -- ./make-thumb {}")
	}
	path, err := exec.LookPath(e.Argv[0])
	if err != nil {
		var ee *exec.Error
		if errors.As(err, &ee) && errors.Is(ee.Err, exec.ErrNotFound) {
			return fmt.Errorf("command %q not found; give a path or a program on PATH", e.Argv[0])
		}
		return fmt.Errorf("command %q cannot be run (%v); check that it exists and is executable (chmod +x)", e.Argv[0], errors.Unwrap(err))
	}
	st, err := os.Stat(path)
	if err == nil && st.IsDir() {
		return fmt.Errorf("command %q is a directory; give the program to run", e.Argv[0])
	}
	return nil
}

// Handle runs the command for one item.
func (e *Exec) Handle(ctx context.Context, it queue.Item) error {
	argv := make([]string, len(e.Argv))
	for i, a := range e.Argv {
		if i > 0 && strings.Contains(a, "{}") {
			if bytes.IndexByte(it.Payload, 0) >= 0 {
				return errors.New("the item holds a NUL byte and cannot be an argument; read it from stdin instead of {}")
			}
			a = strings.ReplaceAll(a, "{}", string(it.Payload))
		}
		argv[i] = a
	}
	env := []string{
		"WORKQ_ITEM_ID=" + strconv.FormatInt(it.ID, 10),
		"WORKQ_ATTEMPT=" + strconv.Itoa(it.Attempt),
		"WORKQ_FENCE=" + strconv.FormatInt(it.Fence, 10),
	}
	if it.Index >= 0 {
		env = append(env, "WORKQ_INDEX="+it.FormatIndex(), "JOB_COMPLETION_INDEX="+it.FormatIndex())
	}
	return e.run(ctx, argv, it.Payload, env, slog.Int64("item", it.ID), slog.Int("attempt", it.Attempt))
}

// HandleBatch runs the command once for a whole batch: the items on stdin,
// one per line (NUL-separated with --null).
func (e *Exec) HandleBatch(ctx context.Context, items []queue.Item) error {
	sep := byte('\n')
	if e.NUL {
		sep = 0
	}
	var in bytes.Buffer
	ids := make([]string, len(items))
	for i, it := range items {
		in.Write(it.Payload)
		in.WriteByte(sep)
		ids[i] = strconv.FormatInt(it.ID, 10)
	}
	list := strings.Join(ids, ",")
	env := []string{"WORKQ_BATCH_SIZE=" + strconv.Itoa(len(items)), "WORKQ_ITEM_IDS=" + list}
	if len(items) > 0 {
		env = append(env, "WORKQ_FENCE="+strconv.FormatInt(items[0].Fence, 10))
	}
	return e.run(ctx, e.Argv, in.Bytes(), env, slog.String("items", list))
}

// capped keeps the first maxCapture bytes written to it and counts the
// rest; with tailSize set, it also keeps the last tailSize bytes of all.
// It has only Write (no ReadFrom), so io.Copy cannot go around the cap.
type capped struct {
	head     []byte
	dropped  int64
	tailSize int
	tail     []byte
	notes    []string
}

func (c *capped) Write(p []byte) (int, error) {
	keep := min(len(p), maxCapture-len(c.head))
	if need := len(c.head) + keep; need > cap(c.head) {
		// Double, up to the cap: append grows a large slice by a quarter
		// at a time, allocating several times what it finally holds.
		grown := make([]byte, len(c.head), min(max(2*cap(c.head), need), maxCapture))
		copy(grown, c.head)
		c.head = grown
	}
	c.head = append(c.head, p[:keep]...)
	c.dropped += int64(len(p) - keep)
	if c.tailSize > 0 {
		c.tail = append(c.tail, p[max(len(p)-c.tailSize, 0):]...)
		if extra := len(c.tail) - c.tailSize; extra > 0 {
			c.tail = append(c.tail[:0], c.tail[extra:]...)
		}
	}
	return len(p), nil
}

// last returns the end of the output, up to n bytes (the end of what was
// written, even past the cap, when tailSize keeps it).
func (c *capped) last(n int) []byte {
	src := c.head
	if c.dropped > 0 && c.tailSize > 0 {
		src = c.tail
	}
	return src[max(len(src)-n, 0):]
}

// note adds a line after the output.
func (c *capped) note(s string) { c.notes = append(c.notes, s) }

// parts returns the kept output, and the notes to write after it.
func (c *capped) parts() (kept, notes []byte) {
	if c.dropped > 0 {
		notes = fmt.Appendf(notes, "\n[workq: %d more bytes of output dropped]\n", c.dropped)
	}
	for _, n := range c.notes {
		notes = append(append(notes, n...), '\n')
	}
	return c.head, notes
}

// smallInput fits in an empty pipe on every Unix without blocking.
const smallInput = 4096

// inputFile returns a file that holds all of b, for a command's stdin. The
// whole input is in place before the command starts, so if this worker dies
// meanwhile (kill -9) the command still reads the whole item, never a
// cut-short one that looks complete. Inputs go through a pipe made large
// enough to hold them (see maxPipeInput), else through an unlinked
// temporary file.
func inputFile(b []byte) (*os.File, error) {
	if len(b) <= maxPipeInput {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		if growPipe(w, len(b)) {
			_, err = w.Write(b)
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				r.Close()
				return nil, err
			}
			return r, nil
		}
		r.Close()
		w.Close()
	}
	f, err := os.CreateTemp("", "workq-input-*")
	if err != nil {
		return nil, err
	}
	_ = os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// environ is the environment a command starts from: the worker's, without
// the Redis connection settings (WORKQ_REDIS_URL, _PASSWORD, _CA, ...)
// unless PassRedisEnv.
func (e *Exec) environ() []string {
	env := slices.Clone(e.baseEnv)
	if env == nil {
		env = os.Environ()
	}
	if !e.PassRedisEnv {
		env = slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "WORKQ_REDIS_") })
	}
	return env
}

func (e *Exec) log() *slog.Logger {
	if e.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Log
}

func (e *Exec) run(ctx context.Context, argv []string, stdin []byte, env []string, attrs ...any) error {
	if e.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.Timeout)
		defer cancel()
	}
	e.prep.Do(func() {
		e.path, _ = exec.LookPath(e.Argv[0])
		e.env = e.environ()
	})
	name := argv[0]
	if e.path != "" {
		name = e.path
	}
	cmd := exec.CommandContext(ctx, name, argv[1:]...)
	cmd.Args[0] = argv[0] // the program sees its name as given
	job, _ := queue.JobFromContext(ctx)
	cmd.Env = append(slices.Clip(e.env), append([]string{"WORKQ_JOB=" + job.Name, "WORKQ_WORKER_ID=" + job.WorkerID}, env...)...)
	if in, ierr := inputFile(stdin); ierr == nil {
		defer in.Close()
		cmd.Stdin = in
	} else {
		// No temporary file (a read-only filesystem): stream it instead.
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr capped
	stderr.tailSize = stderrTail
	stdout.tailSize = e.ResultBytes
	out, err := newOutputPipes(&stdout, &stderr)
	if err != nil {
		return fmt.Errorf("make the output pipes: %w", err)
	}
	defer out.close()
	cmd.Stdout, cmd.Stderr = out.w[0], out.w[1]
	cmd.SysProcAttr = procAttr()
	// A timeout or a stop kills the whole process group.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// Only a streamed stdin can keep Wait waiting after the command exits.
	cmd.WaitDelay = outputDelay
	attrs = append(attrs, "job", job.Name, "command", argv[0])
	start := time.Now()
	err = cmd.Start()
	out.closeWriters() // the command holds its own
	if err == nil {
		if err = cmd.Wait(); errors.Is(err, exec.ErrWaitDelay) {
			err = nil // it exited 0; its stdin was not all read
		}
		// The main process is gone: what is left of its group was started
		// in the background. It goes now, so that it cannot hold the
		// output open, nor run on unseen.
		if syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) == nil && ctx.Err() == nil {
			stderr.note("[workq: the command left background processes; they were killed]")
			e.log().Warn("command left background processes; killed them", attrs...)
		}
	}
	if !out.wait(outputDelay) {
		stderr.note("[workq: a process outside the command's process group held its output open; the rest was not read]")
		e.log().Warn("a process outside the command's process group held its output open", attrs...)
	}
	if e.ResultBytes > 0 {
		queue.SetOutput(ctx, stdout.last(e.ResultBytes))
	}
	e.Out.write(&stdout, &stderr)
	if err == nil {
		return nil
	}
	return e.failure(ctx, err, time.Since(start), stderr.tail)
}

// failure is the error of a command that failed: why, then the tail of its
// stderr.
func (e *Exec) failure(ctx context.Context, err error, took time.Duration, tail []byte) error {
	msg := strings.TrimSpace(string(tail))
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded) && e.Timeout > 0:
		err = fmt.Errorf("%w after %s (--timeout); the process group was killed", queue.ErrItemTimeout, e.Timeout)
	case ctx.Err() != nil:
		err = fmt.Errorf("stopped after %s: %w", took.Round(time.Millisecond), ctx.Err())
	}
	if msg != "" {
		// The queue keeps only the last queue.MaxErrorBytes of an error:
		// shorten the stderr tail so the cause before it (exit status,
		// timeout) is kept too.
		if room := queue.MaxErrorBytes - len(err.Error()) - len(": ..."); len(msg) > room {
			msg = "..." + msg[len(msg)-max(room, 0):]
		}
		// %w keeps the exit status for the Job's failure policy.
		return fmt.Errorf("%w: %s", err, msg)
	}
	return err
}

// outputPipes carry a command's stdout and stderr to the worker. They are
// the worker's own, not exec's, so that waiting for the command does not
// wait for every process that holds them open.
type outputPipes struct {
	r, w   [2]*os.File
	copied chan struct{} // closed when both are read to the end
}

func newOutputPipes(stdout, stderr io.Writer) (*outputPipes, error) {
	p := &outputPipes{copied: make(chan struct{})}
	for i := range p.r {
		r, w, err := os.Pipe()
		if err != nil {
			p.close()
			return nil, err
		}
		p.r[i], p.w[i] = r, w
	}
	go func() {
		defer close(p.copied)
		var wg sync.WaitGroup
		wg.Go(func() { _, _ = io.Copy(stdout, p.r[0]) })
		_, _ = io.Copy(stderr, p.r[1])
		wg.Wait()
	}()
	return p, nil
}

// closeWriters closes the worker's write ends, once the command has them.
func (p *outputPipes) closeWriters() {
	_ = p.w[0].Close()
	_ = p.w[1].Close()
}

// wait waits until every writer has closed the pipes, and both are read.
// Past delay it stops reading and returns false.
func (p *outputPipes) wait(delay time.Duration) bool {
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-p.copied:
		return true
	case <-t.C:
		_ = p.r[0].Close()
		_ = p.r[1].Close()
		<-p.copied
		return false
	}
}

func (p *outputPipes) close() {
	for _, f := range append(p.r[:], p.w[:]...) {
		if f != nil {
			_ = f.Close()
		}
	}
}
