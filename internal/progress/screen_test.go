package progress

import (
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"github.com/workq/workq/internal/testkit"
)

// screen is a tiny virtual terminal: it prints runes, moves to column 0 on
// \r, to a new line on \n, clears on ESC[K (to end of line) and ESC[2K
// (whole line), and ignores colour (ESC[...m). Anything else, and any rune
// past the last column (the terminal would wrap), fails the test.
type screen struct {
	t     testing.TB
	width int
	rows  [][]rune
	row   int
	col   int
}

func newScreen(t testing.TB, width int) *screen {
	return &screen{t: t, width: width, rows: [][]rune{nil}}
}

func (s *screen) feed(out string) {
	s.t.Helper()
	for i := 0; i < len(out); {
		r, size := utf8.DecodeRuneInString(out[i:])
		switch {
		case r == '\r':
			s.col = 0
		case r == '\n':
			s.row++
			s.col = 0
			for len(s.rows) <= s.row {
				s.rows = append(s.rows, nil)
			}
		case r == 0x1b:
			if i+1 >= len(out) || out[i+1] != '[' {
				s.t.Fatalf("escape that is not CSI at byte %d: %q", i, out[i:])
			}
			j := i + 2
			for j < len(out) && (out[j] < 0x40 || out[j] > 0x7e) {
				j++
			}
			if j == len(out) {
				s.t.Fatalf("unterminated escape at byte %d: %q", i, out[i:])
			}
			params, final := out[i+2:j], out[j]
			switch {
			case final == 'K' && (params == "" || params == "0"):
				if s.col < len(s.rows[s.row]) {
					s.rows[s.row] = s.rows[s.row][:s.col]
				}
			case final == 'K' && params == "2":
				s.rows[s.row] = nil
			case final == 'm':
			default:
				s.t.Fatalf("unexpected escape %q", out[i:j+1])
			}
			i = j + 1
			continue
		case r < 0x20 || r == 0x7f:
			s.t.Fatalf("unexpected control character %q", r)
		default:
			if s.col >= s.width {
				s.t.Fatalf("line wrapped past column %d: %q", s.width, string(s.rows[s.row]))
			}
			line := s.rows[s.row]
			for len(line) <= s.col {
				line = append(line, ' ')
			}
			line[s.col] = r
			s.rows[s.row] = line
			s.col++
		}
		i += size
	}
}

// lines returns the screen's rows without trailing blanks, and without
// empty rows at the bottom.
func (s *screen) lines() []string {
	var out []string
	for _, r := range s.rows {
		out = append(out, strings.TrimRight(string(r), " "))
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

var (
	sgr       = regexp.MustCompile(`\x1b\[[0-9;]*m`)
	frameRE   = regexp.MustCompile(`\r([^\r\n]*?)\x1b\[K`)
	statToken = regexp.MustCompile(`^(\d+%|\|[█░]+\||\d+(/\d+)?|<?\d+(\.\d+)?|items/s|ETA)$`)
	barToken  = regexp.MustCompile(`\|[█░]+\|`)
)

// frames returns every bar line drawn in a transcript, colour removed.
func frames(out string) []string {
	var fs []string
	for _, m := range frameRE.FindAllStringSubmatch(out, -1) {
		if m[1] != "" {
			fs = append(fs, sgr.ReplaceAllString(m[1], ""))
		}
	}
	return fs
}

// requireWholeWords fails unless line is the description's first words
// (the last possibly shortened with "…"), then stats and the ETA's words:
// no word of either is cut.
func requireWholeWords(t testing.TB, line string, desc []string, eta string) {
	t.Helper()
	words := strings.Fields(strings.Join(desc, " "))
	toks := strings.Fields(line)
	k := 0
	for k < len(toks) && k < len(words) && toks[k] == words[k] {
		k++
	}
	if k < len(toks) && strings.HasSuffix(toks[k], ellipsis) {
		if k >= len(words) || toks[k] != cut(words[k]) {
			t.Fatalf("frame %q cuts a word: %q", line, toks[k])
		}
		k++
	}
	etaWords := strings.Fields(eta)
	for _, tok := range toks[k:] {
		if !statToken.MatchString(tok) && !contains(etaWords, tok) {
			t.Fatalf("frame %q has a cut or foreign word %q", line, tok)
		}
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func newClock() *testkit.Clock { return testkit.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) }

func TestScreenHelper(t *testing.T) {
	t.Parallel()
	s := newScreen(t, 20)
	s.feed("hello world\rHE\x1b[Kx\n\x1b[32mgreen\x1b[0m\rab\x1b[2Kcd\nlast")
	// \r then ESC[K cut "llo world"; ESC[2K cleared "ab" but the cursor
	// stayed at column 2, so "cd" lands there.
	require.Equal(t, []string{"HEx", "  cd", "last"}, s.lines())
	require.Equal(t, []string{"abc", "█ d"}, frames("\rabc\x1b[K\r\x1b[K\r\x1b[32m█\x1b[0m d\x1b[K"))
	requireWholeWords(t, "job Running…  |██░░| 1/2  ETA 5s", []string{"job Running (1 dead)"}, "ETA 5s")
}
