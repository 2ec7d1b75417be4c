package workercmd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/workq/workq/pkg/queue"
)

// maxCapture caps the output of one item kept in memory before it is
// written; past it, the rest is dropped with a note, so one runaway item
// cannot exhaust the worker's memory.
const maxCapture = 8 << 20

// stderrTail is how much of an item's stderr becomes its error.
const stderrTail = 2048

// Exec runs a command per item (or per batch), without a shell. The item
// goes to the command's stdin; an argument holding "{}" has it replaced by
// the item. The command's output is written whole when it ends, so outputs
// of concurrent items never interleave.
type Exec struct {
	Job     string
	Worker  string
	Argv    []string
	Timeout time.Duration // per item or batch; 0: none
	Indexed bool          // set WORKQ_INDEX and JOB_COMPLETION_INDEX
	NUL     bool          // batch stdin: NUL-separated instead of lines
	Out     *Output
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

func (o *Output) write(stdout, stderr []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.Framed {
		for _, f := range []struct {
			kind byte
			b    []byte
		}{{FrameStdout, stdout}, {FrameStderr, stderr}} {
			if len(f.b) == 0 {
				continue
			}
			var hdr [5]byte
			hdr[0] = f.kind
			binary.BigEndian.PutUint32(hdr[1:], uint32(len(f.b)))
			_, _ = o.Stdout.Write(append(hdr[:], f.b...))
		}
		return
	}
	if len(stdout) > 0 {
		_, _ = o.Stdout.Write(stdout)
	}
	if len(stderr) > 0 {
		_, _ = o.Stderr.Write(stderr)
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
	}
	if e.Indexed {
		env = append(env, "WORKQ_INDEX="+string(it.Payload), "JOB_COMPLETION_INDEX="+string(it.Payload))
	}
	return e.run(ctx, argv, it.Payload, env)
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
	env := []string{"WORKQ_BATCH_SIZE=" + strconv.Itoa(len(items)), "WORKQ_ITEM_IDS=" + strings.Join(ids, ",")}
	return e.run(ctx, e.Argv, in.Bytes(), env)
}

// capped is a buffer that keeps at most maxCapture bytes.
type capped struct {
	bytes.Buffer
	dropped int
}

func (c *capped) Write(p []byte) (int, error) {
	room := maxCapture - c.Len()
	if room < len(p) {
		c.dropped += len(p) - max(room, 0)
		if room > 0 {
			c.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return c.Buffer.Write(p)
}

func (c *capped) bytes() []byte {
	if c.dropped > 0 {
		fmt.Fprintf(&c.Buffer, "\n[workq: %d more bytes of output dropped]\n", c.dropped)
	}
	return c.Bytes()
}

// smallInput fits in an empty pipe on every Unix without blocking.
const smallInput = 4096

// inputFile returns a file that holds all of b, for a command's stdin. The
// whole input is in place before the command starts, so if this worker dies
// meanwhile (kill -9) the command still reads the whole item, never a
// cut-short one that looks complete. Small inputs go through a pipe, larger
// ones through an unlinked temporary file.
func inputFile(b []byte) (*os.File, error) {
	if len(b) <= smallInput {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
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

func (e *Exec) run(ctx context.Context, argv []string, stdin []byte, env []string) error {
	if e.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.Timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), append([]string{"WORKQ_JOB=" + e.Job, "WORKQ_WORKER_ID=" + e.Worker}, env...)...)
	if in, ierr := inputFile(stdin); ierr == nil {
		defer in.Close()
		cmd.Stdin = in
	} else {
		// No temporary file (a read-only filesystem): stream it instead.
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr capped
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = procAttr()
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 2 * time.Second
	start := time.Now()
	err := cmd.Run()
	if cmd.Process != nil {
		// Children left behind in the group go too.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	e.Out.write(stdout.bytes(), stderr.bytes())
	if err == nil {
		return nil
	}
	tail := stderr.Bytes()
	if len(tail) > stderrTail {
		tail = tail[len(tail)-stderrTail:]
	}
	msg := strings.TrimSpace(string(tail))
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded) && e.Timeout > 0:
		err = fmt.Errorf("timed out after %s (--timeout); the process group was killed", e.Timeout)
	case ctx.Err() != nil:
		err = fmt.Errorf("stopped after %s: %w", time.Since(start).Round(time.Millisecond), ctx.Err())
	}
	if msg != "" {
		// The queue keeps only the last queue.MaxErrorBytes of an error:
		// shorten the stderr tail so the cause before it (exit status,
		// timeout) is kept too.
		if room := queue.MaxErrorBytes - len(err.Error()) - len(": ..."); len(msg) > room {
			msg = "..." + msg[len(msg)-max(room, 0):]
		}
		return fmt.Errorf("%v: %s", err, msg)
	}
	return err
}
