package progress

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	clearToEOL  = "\x1b[K"
	colorFill   = "\x1b[32m" // green: the succeeded part
	colorReset  = "\x1b[0m"
	cellFilled  = "█"
	cellEmpty   = "░"
	ellipsis    = "…"
	minBarCells = 10
	maxBarCells = 40
)

// frame is what one bar line shows.
type frame struct {
	desc  []string // description parts, most important first, cleaned
	n     int64
	total int64  // < 0: unknown
	rate  string // "" until there is a meaningful rate
	eta   string // "" when the caller gave none
	color bool
}

func (f frame) count() string {
	if f.total < 0 {
		return fmt.Sprintf("%d", f.n)
	}
	return fmt.Sprintf("%d/%d", f.n, f.total)
}

// percent is the share done, rounded down so that 100% means all; "" when
// the total is unknown or zero.
func (f frame) percent() string {
	if f.total <= 0 {
		return ""
	}
	p := int(100 * (float64(min(max(f.n, 0), f.total)) / float64(f.total)))
	return fmt.Sprintf("%d%%", p)
}

func (f frame) bar(cells int) string {
	filled := 0
	if f.total > 0 {
		filled = int(float64(cells) * float64(min(max(f.n, 0), f.total)) / float64(f.total))
	}
	fill := strings.Repeat(cellFilled, filled)
	if f.color && filled > 0 {
		fill = colorFill + fill + colorReset
	}
	return "|" + fill + strings.Repeat(cellEmpty, cells-filled) + "|"
}

// A level is one way of laying out the line.
type level struct {
	rate, pct, eta, bar bool
	desc                descFit
}

type descFit int

const (
	descNone  descFit = iota // no description
	descFull                 // the whole description or nothing
	descShort                // shortened to whole words, at least one
)

// layout renders f as one line of at most width-1 columns (the last column
// stays free, so that no terminal wraps), or "" when not even the count fits.
// Parts of the text are dropped whole, never cut mid-word.
func layout(f frame, width int) string {
	const descSep = "  "
	// Tried in order, the first that fits wins: each drops a little more
	// than the previous, the rate first, then the percentage, the
	// description's tail, the ETA, the whole description, and last the bar.
	// The count is always kept.
	levels := []level{
		{rate: true, pct: true, eta: true, bar: true, desc: descFull},
		{pct: true, eta: true, bar: true, desc: descFull},
		{eta: true, bar: true, desc: descFull},
		{eta: true, bar: true, desc: descShort},
		{bar: true, desc: descShort},
		{eta: true, bar: true},
		{bar: true},
		{desc: descShort},
		{},
	}
	avail := width - 1
	type elem struct {
		text, sep string
		width     int // columns of text, escapes not counted
	}
	for _, lv := range levels {
		// The bar at its smallest first: the description gets room before
		// the bar grows.
		barAt := -1
		var stats []elem
		if p := f.percent(); lv.pct && p != "" {
			stats = append(stats, elem{p, " ", textWidth(p)})
		}
		if lv.bar && f.total >= 0 {
			barAt = len(stats)
			stats = append(stats, elem{f.bar(minBarCells), " ", minBarCells + 2})
		}
		stats = append(stats, elem{f.count(), " ", textWidth(f.count())})
		if lv.rate && f.rate != "" {
			stats = append(stats, elem{f.rate, "  ", textWidth(f.rate)})
		}
		if lv.eta && f.eta != "" {
			stats = append(stats, elem{f.eta, "  ", textWidth(f.eta)})
		}
		used := 0
		for i, e := range stats {
			if i > 0 {
				used += len(e.sep)
			}
			used += e.width
		}
		desc := ""
		if lv.desc != descNone {
			var ok bool
			if desc, ok = fitDesc(f.desc, avail-used-len(descSep), lv.desc == descShort); !ok {
				continue
			}
		}
		if desc != "" {
			stats[0].sep = descSep
			used += textWidth(desc) + len(descSep)
		}
		if used > avail {
			continue
		}
		if barAt >= 0 {
			stats[barAt].text = f.bar(min(maxBarCells, minBarCells+avail-used))
		}
		var sb strings.Builder
		sb.WriteString(desc)
		for i, e := range stats {
			if i > 0 || desc != "" {
				sb.WriteString(e.sep)
			}
			sb.WriteString(e.text)
		}
		return sb.String()
	}
	return ""
}

// fitDesc returns the description in at most room columns: whole, or when
// short is allowed, with trailing parts dropped, then the first part's
// trailing words, ending with "…". ok is false when nothing fits (an empty
// description always fits).
func fitDesc(parts []string, room int, short bool) (string, bool) {
	if len(parts) == 0 {
		return "", true
	}
	full := strings.Join(parts, " ")
	if textWidth(full) <= room {
		return full, true
	}
	if !short {
		return "", false
	}
	for k := len(parts) - 1; k >= 1; k-- {
		if s := cut(strings.Join(parts[:k], " ")); textWidth(s) <= room {
			return s, true
		}
	}
	words := strings.Fields(parts[0])
	for k := len(words) - 1; k >= 1; k-- {
		if s := cut(strings.Join(words[:k], " ")); textWidth(s) <= room {
			return s, true
		}
	}
	return "", false
}

// cut marks s as shortened, without a dangling separator before the mark.
func cut(s string) string {
	return strings.TrimRight(s, ",;:-– ") + ellipsis
}

// textWidth is the number of columns s takes, for text without escapes:
// one per rune.
func textWidth(s string) int { return utf8.RuneCountInString(s) }

// clean makes s safe on one line: control characters become spaces, runs of
// spaces one.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

func cleanParts(parts []string) []string {
	out := make([]string, 0, len(parts))
	for _, p := range parts {
		if p = clean(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
