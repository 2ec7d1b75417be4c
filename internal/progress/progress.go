package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"golang.org/x/term"
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

// defaultWidth is the width assumed when a terminal's cannot be measured.
const defaultWidth = 80

// termWidth returns the width of the terminal w, or defaultWidth when w is
// not a terminal or its width cannot be read.
func termWidth(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
			return cols
		}
	}
	return defaultWidth
}

// config is how a Bar draws; New derives it from the writer and the
// environment, tests set it directly.
type config struct {
	terminal bool             // redraw a bar in place; else plain lines
	color    bool             // colour the filled part of the bar
	width    func() int       // the terminal's width now, in columns
	now      func() time.Time // the clock
	every    time.Duration    // plain mode: at most one line per every
	throttle time.Duration    // terminal: at most one redraw per throttle, on Set
}

// Bar is a progress display for a count that grows to total (-1: unknown).
// It is safe for concurrent use; output written through Println and Write
// is serialised with the bar's own drawing.
type Bar struct {
	mu       sync.Mutex
	w        io.Writer
	cfg      config
	desc     []string // description parts, most important first
	eta      string
	total    int64
	n        int64
	rate     rateMeter
	set      bool      // Set was called: there is something to draw
	last     time.Time // last redraw (terminal) or line (plain)
	line     string    // the bar line on screen, when shown
	shown    bool      // the bar line is on screen
	midLine  bool      // output left the cursor mid-line; the bar waits for its newline
	finished bool
}

// New returns a Bar writing to w: a bar redrawn in place when w is a
// terminal (and TERM is not dumb), a plain line every two seconds otherwise.
// Nothing is shown before the first Set.
func New(w io.Writer, total int64, label string) *Bar {
	return newBar(w, total, label, config{
		terminal: IsTerminal(w) && os.Getenv("TERM") != "dumb",
		color:    Color(w),
		width:    func() int { return termWidth(w) },
		now:      time.Now,
	})
}

func newBar(w io.Writer, total int64, label string, cfg config) *Bar {
	if cfg.every == 0 {
		cfg.every = 2 * time.Second
	}
	if cfg.throttle == 0 {
		cfg.throttle = 100 * time.Millisecond
	}
	b := &Bar{w: w, cfg: cfg, total: total, last: cfg.now()}
	b.desc = cleanParts([]string{label})
	return b
}

// Set moves the bar to n and redraws it (on a terminal at most every 100ms,
// unless the bar is not on screen; off a terminal a line every two seconds).
// It does nothing after Finish.
func (b *Bar) Set(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished {
		return
	}
	now := b.cfg.now()
	b.n, b.set = n, true
	b.rate.observe(now, n)
	if b.midLine {
		return
	}
	if b.cfg.terminal {
		if !b.shown || now.Sub(b.last) >= b.cfg.throttle {
			b.draw(now)
		}
		return
	}
	if now.Sub(b.last) >= b.cfg.every {
		b.last = now
		fmt.Fprintln(b.w, b.plainLine(now))
	}
}

// Describe changes the description shown before the bar, from the next Set
// on. Parts are given most important first: when the line is too narrow the
// trailing parts are dropped whole, then the first part's trailing words,
// and "…" marks the cut. Control characters become spaces.
func (b *Bar) Describe(parts ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.desc = cleanParts(parts)
}

// SetETA sets the text of the ETA slot, such as "ETA 1m20s" or "ETA unknown",
// from the next Set on; "" hides the slot (the default).
func (b *Bar) SetETA(text string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.eta = clean(text)
}

// SetTotal changes the total, for counts that grow while shown; -1 means
// unknown (no bar, no percentage), from the next Set on.
func (b *Bar) SetTotal(total int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.total = total
}

// Println writes its operands as fmt.Println does, above the bar: the bar
// line is cleared, the text written, and the bar redrawn below it.
func (b *Bar) Println(a ...any) {
	_, _ = b.Write([]byte(fmt.Sprintln(a...)))
}

// Write writes p above the bar, as Println does, and returns the writer's
// result. When p does not end with a newline the bar stays hidden until a
// later write ends the line, so that it never overwrites a partial line.
func (b *Bar) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(p) == 0 {
		return 0, nil
	}
	b.clear()
	n, err := b.w.Write(p)
	b.midLine = p[len(p)-1] != '\n'
	if b.cfg.terminal && b.set && !b.midLine && !b.finished && err == nil {
		b.draw(b.cfg.now())
	}
	return n, err
}

// Clear removes the bar from the terminal, so other output can be written
// directly to the writer; it comes back on the next Set. Println and Write
// do this by themselves and bring the bar back at once.
func (b *Bar) Clear() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.clear()
}

// Finish removes the bar; it prints nothing more, and later calls of Set do
// nothing. Println and Write still write their text.
func (b *Bar) Finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished {
		return
	}
	b.finished = true
	b.clear()
}

// Line returns the plain progress line for the current count.
func (b *Bar) Line() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.plainLine(b.cfg.now())
}

// draw redraws the bar line in place. The caller holds mu.
func (b *Bar) draw(now time.Time) {
	b.last = now
	line := layout(b.frame(now), b.cfg.width())
	if b.shown && line == b.line {
		return
	}
	_, _ = io.WriteString(b.w, "\r"+line+clearToEOL)
	b.line, b.shown = line, true
}

// clear erases the bar line if it is shown. The caller holds mu.
func (b *Bar) clear() {
	if !b.shown {
		return
	}
	_, _ = io.WriteString(b.w, "\r"+clearToEOL)
	b.line, b.shown = "", false
}

func (b *Bar) frame(now time.Time) frame {
	f := frame{desc: b.desc, n: b.n, total: b.total, eta: b.eta, color: b.cfg.color}
	if r, ok := b.rate.rate(now, b.n); ok {
		f.rate = formatRate(r)
	}
	return f
}

// plainLine is the progress line written off a terminal, such as
// "job Running: 420/1000 (42%), 3.5 items/s, ETA 1m20s".
func (b *Bar) plainLine(now time.Time) string {
	f := b.frame(now)
	var sb strings.Builder
	if d := strings.Join(f.desc, " "); d != "" {
		sb.WriteString(d + ": ")
	}
	sb.WriteString(f.count())
	if p := f.percent(); p != "" {
		sb.WriteString(" (" + p + ")")
	}
	for _, s := range []string{f.rate, f.eta} {
		if s != "" {
			sb.WriteString(", " + s)
		}
	}
	return sb.String()
}
