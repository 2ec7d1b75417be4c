// Package progress shows progress: a bar on a terminal, plain periodic lines
// otherwise.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"
)

// IsTerminal reports whether w is a terminal.
func IsTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// Color reports whether w may get colour: a terminal, and NO_COLOR unset.
func Color(w io.Writer) bool {
	return IsTerminal(w) && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
}

// Bar is a progress display for a count that grows to total (-1: unknown).
// It is safe for concurrent use.
type Bar struct {
	mu       sync.Mutex
	bar      *progressbar.ProgressBar // nil when not a terminal
	w        io.Writer
	label    string
	total    int64
	last     time.Time
	n        int64
	start    time.Time
	every    time.Duration
	finished bool
}

// New returns a Bar writing to w. Totals under 1000 show no periodic lines
// off a terminal (the final line says it all).
func New(w io.Writer, total int64, label string) *Bar {
	b := &Bar{w: w, label: label, total: total, start: time.Now(), last: time.Now(), every: 2 * time.Second}
	if IsTerminal(w) {
		opts := []progressbar.Option{
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(label),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("items"),
			progressbar.OptionThrottle(100 * time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionEnableColorCodes(Color(w)),
		}
		b.bar = progressbar.NewOptions64(total, opts...)
	}
	return b
}

// Set moves the bar to n.
func (b *Bar) Set(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished {
		return
	}
	b.n = n
	if b.bar != nil {
		_ = b.bar.Set64(n)
		return
	}
	if time.Since(b.last) >= b.every {
		b.last = time.Now()
		fmt.Fprintln(b.w, b.line())
	}
}

func (b *Bar) line() string {
	rate := float64(b.n) / max(time.Since(b.start).Seconds(), 1e-9)
	if b.total > 0 {
		return fmt.Sprintf("%s: %d/%d (%.0f%%), %.0f items/s", b.label, b.n, b.total, 100*float64(b.n)/float64(b.total), rate)
	}
	return fmt.Sprintf("%s: %d, %.0f items/s", b.label, b.n, rate)
}

// Describe changes the label shown before the bar.
func (b *Bar) Describe(label string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.label = label
	if b.bar != nil {
		b.bar.Describe(label)
	}
}

// Clear removes the bar from the terminal, so other output can be written;
// it comes back on the next Set.
func (b *Bar) Clear() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar != nil {
		_ = b.bar.Clear()
	}
}

// Finish removes the bar; it prints nothing more.
func (b *Bar) Finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished {
		return
	}
	b.finished = true
	if b.bar != nil {
		_ = b.bar.Finish()
		_ = b.bar.Clear()
	}
}

// SetTotal changes the total, for counts that grow while shown.
func (b *Bar) SetTotal(total int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if total == b.total {
		return
	}
	b.total = total
	if b.bar != nil {
		b.bar.ChangeMax64(total)
	}
}

// Line returns the plain progress line for the current count.
func (b *Bar) Line() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.line()
}
