// Package items reads work items from a stream: one per line, or separated
// by NUL bytes, with the checks that keep bad input out of a queue.
package items

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/workq/workq/pkg/queue"
)

// DefaultMaxBytes is the largest item accepted by default: 1 MiB.
const DefaultMaxBytes = 1 << 20

// Options say how items are separated and checked.
type Options struct {
	// NUL separates items by NUL bytes (items may hold newlines and any
	// bytes); otherwise items are lines of UTF-8 text (a trailing "\r" is
	// dropped, so CRLF files work).
	NUL bool
	// MaxBytes is the largest item. Default DefaultMaxBytes.
	MaxBytes int
	// SkipEmpty skips empty items instead of refusing them.
	SkipEmpty bool
}

// Error is a bad item: which one, and why. It wraps queue.ErrInvalidItem.
type Error struct {
	N      int64 // 1-based item number (the line number in line mode)
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("invalid item: item %d %s", e.N, e.Reason)
}

// Unwrap makes errors.Is(err, queue.ErrInvalidItem) true.
func (e *Error) Unwrap() error { return queue.ErrInvalidItem }

// Reader reads items one by one with bounded memory: an item over MaxBytes
// is refused as soon as it is seen, without buffering the rest of it.
type Reader struct {
	r    *bufio.Reader
	o    Options
	n    int64 // items or lines seen
	buf  []byte
	sep  byte
	done bool
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader, o Options) *Reader {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	sep := byte('\n')
	if o.NUL {
		sep = 0
	}
	return &Reader{r: bufio.NewReaderSize(r, 256*1024), o: o, sep: sep}
}

// Count returns how many items (or lines) have been read.
func (r *Reader) Count() int64 { return r.n }

// Next returns the next item, valid until the following call, or io.EOF.
// Bad items return an *Error.
func (r *Reader) Next() ([]byte, error) {
	for {
		if r.done {
			return nil, io.EOF
		}
		item, err := r.readRecord()
		if err != nil {
			return nil, err
		}
		if item == nil {
			continue // skipped empty item
		}
		return item, nil
	}
}

// readRecord reads one record; nil, nil means an empty item was skipped.
func (r *Reader) readRecord() ([]byte, error) {
	r.buf = r.buf[:0]
	for {
		chunk, err := r.r.ReadSlice(r.sep)
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			r.done = true
			if len(r.buf)+len(chunk) == 0 {
				return nil, io.EOF
			}
		default:
			return nil, fmt.Errorf("read items: %w", err)
		}
		if len(r.buf)+len(chunk) > r.o.MaxBytes+2 { // + separator and \r
			r.n++
			return nil, &Error{N: r.n, Reason: fmt.Sprintf("is larger than the limit of %d bytes; raise --max-item-bytes or store large payloads elsewhere and push a reference", r.o.MaxBytes)}
		}
		r.buf = append(r.buf, chunk...)
		if err == nil || r.done {
			break
		}
	}
	r.n++
	item := r.buf
	if n := len(item); n > 0 && item[n-1] == r.sep {
		item = item[:n-1]
	}
	if !r.o.NUL && len(item) > 0 && item[len(item)-1] == '\r' {
		item = item[:len(item)-1]
	}
	if len(item) > r.o.MaxBytes {
		return nil, &Error{N: r.n, Reason: fmt.Sprintf("is larger than the limit of %d bytes; raise --max-item-bytes or store large payloads elsewhere and push a reference", r.o.MaxBytes)}
	}
	if len(item) == 0 {
		if r.o.SkipEmpty {
			return nil, nil
		}
		what := "line"
		if r.o.NUL {
			what = "NUL-separated item"
		}
		return nil, &Error{N: r.n, Reason: fmt.Sprintf("is empty (an empty %s); remove it or pass --skip-empty", what)}
	}
	if !r.o.NUL {
		if bytes.IndexByte(item, 0) >= 0 {
			return nil, &Error{N: r.n, Reason: "holds a NUL byte; binary items must be pushed with --null (NUL-separated)"}
		}
		if !utf8.Valid(item) {
			return nil, &Error{N: r.n, Reason: "is not valid UTF-8 text; push binary items with --null (NUL-separated)"}
		}
	}
	return item, nil
}

// Check validates one item given as an argument.
func Check(n int64, item []byte, o Options) error {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	switch {
	case len(item) == 0:
		return &Error{N: n, Reason: "is empty; give a non-empty item"}
	case len(item) > o.MaxBytes:
		return &Error{N: n, Reason: fmt.Sprintf("is larger than the limit of %d bytes; raise --max-item-bytes", o.MaxBytes)}
	}
	return nil
}
