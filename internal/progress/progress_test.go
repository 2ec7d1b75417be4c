package progress

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/workq/workq/internal/testkit"
)

// setup returns a Bar drawing as on a terminal of the given width (or plain
// lines when width is 0), the transcript it writes and its clock.
func setup(t *testing.T, width int) (*Bar, *testkit.Buffer, *testkit.Clock) {
	t.Helper()
	out, c := &testkit.Buffer{}, newClock()
	b := newBar(out, -1, "job", config{terminal: width > 0, width: func() int { return width }, now: c.Now})
	return b, out, c
}

func TestLayoutFitsWidthWithoutCuttingWords(t *testing.T) {
	t.Parallel()
	descs := [][]string{
		nil,
		{"job"},
		{"render-thumbnails Running (1234 failed attempts, 56 dead)"},
		{"render-thumbnails Running", "(1234 failed attempts, 56 dead)"},
		{"a-job-name-far-longer-than-any-terminal-is-wide-" + strings.Repeat("x", 80) + " Running"},
	}
	for _, width := range []int{120, 80, 60, 40, 30, 20, 12, 8, 2, 1} {
		for _, desc := range descs {
			for _, total := range []int64{-1, 0, 1000, 1_000_000_000_000} {
				for _, n := range []int64{0, 1, total / 2, total} {
					for _, extra := range [][2]string{{"", ""}, {"12.5 items/s", "ETA 1m20s"}, {"<0.01 items/s", "ETA unknown"}} {
						f := frame{desc: desc, n: max(n, 0), total: total, rate: extra[0], eta: extra[1]}
						line := layout(f, width)
						name := fmt.Sprintf("width %d, frame %+v: %q", width, f, line)
						require.LessOrEqual(t, textWidth(line), max(width-1, 0), name)
						requireWholeWords(t, line, desc, f.eta)
						if textWidth(f.count()) <= width-1 {
							require.Contains(t, line, f.count(), name)
						}
						if width >= 40 && total >= 0 && minBarCells+3+textWidth(f.count()) <= width-1 {
							require.Regexp(t, `\|[█░]{10,}\|`, line, name)
						}
					}
				}
			}
		}
	}
}

func TestLayoutDropsWholePartsAsTheLineNarrows(t *testing.T) {
	t.Parallel()
	one := []string{"render-thumbnails Running (1234 failed attempts, 56 dead)"}
	two := []string{"render-thumbnails Running", "(1234 failed attempts, 56 dead)"}
	cases := []struct {
		name  string
		desc  []string
		width int
		want  string
	}{
		{"WideShowsEverything", []string{"job Running"}, 80,
			"job Running  42% |██████████░░░░░░░░░░░░░░░░| 420/1000  12.5 items/s  ETA 1m20s"},
		{"RateGoesBeforeTheDescription", one, 100,
			"render-thumbnails Running (1234 failed attempts, 56 dead)  42% |█████░░░░░░░░░| 420/1000  ETA 1m20s"},
		{"DescriptionLosesWordsNotTheBar", one, 80,
			"render-thumbnails Running (1234 failed…  |██████░░░░░░░░░░| 420/1000  ETA 1m20s"},
		{"TrailingPartsGoWhole", two, 80,
			"render-thumbnails Running…  |████████████░░░░░░░░░░░░░░░░░| 420/1000  ETA 1m20s"},
		{"NarrowKeepsOneWord", one, 60,
			"render-thumbnails…  |███████░░░░░░░░░░| 420/1000  ETA 1m20s"},
		{"FortyColumnsKeepTheBarAndETA", one, 40,
			"|███████░░░░░░░░░░| 420/1000  ETA 1m20s"},
		{"ThirtyColumnsKeepTheBar", one, 30,
			"|███████░░░░░░░░░░░| 420/1000"},
		{"NameFitsWhereTheBarDoesNot", []string{"job"}, 20,
			"job  420/1000"},
		{"OneWordFitsWhereTheBarDoesNot", []string{"job Running"}, 20,
			"job…  420/1000"},
		{"CountAlone", one, 12, "420/1000"},
		{"NothingFits", one, 8, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := frame{desc: c.desc, n: 420, total: 1000, rate: "12.5 items/s", eta: "ETA 1m20s"}
			require.Equal(t, c.want, layout(f, c.width))
		})
	}
}

func TestLayoutWithoutATotal(t *testing.T) {
	t.Parallel()
	require.Equal(t, "job  420", layout(frame{desc: []string{"job"}, n: 420, total: -1}, 80))
	require.Equal(t, "pushing  |░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░| 0/0",
		layout(frame{desc: []string{"pushing"}, total: 0}, 80))
	require.Equal(t, "100%", frame{n: 2000, total: 1000}.percent(), "a count past its total shows a full bar")
	require.Equal(t, "99%", frame{n: 999, total: 1000}.percent(), "100% only when all are done")
}

// TestBarRedrawsInPlaceWithOutputAbove runs a bar the way `coordinator run`
// does: failures lengthen the description while item output is printed.
func TestBarRedrawsInPlaceWithOutputAbove(t *testing.T) {
	t.Parallel()
	for _, width := range []int{80, 40} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			t.Parallel()
			b, out, c := setup(t, width)
			scr := newScreen(t, width)
			b.SetTotal(1000)
			b.SetETA("ETA unknown")
			var printed []string
			seen := 0
			for i := range 40 {
				c.Add(150 * time.Millisecond)
				desc := fmt.Sprintf("render-thumbnails Running (%d failed attempts, %d dead)", i*7, i)
				if i == 0 {
					desc = "render-thumbnails Pending"
				}
				b.Describe(desc)
				b.Set(int64(i * 10))
				switch i % 4 {
				case 1:
					line := fmt.Sprintf("item %d: ok", i)
					b.Println(line)
					printed = append(printed, line)
				case 3:
					// Output in two writes: the bar waits for the line's end.
					_, err := b.Write([]byte(fmt.Sprintf("item %d: ", i)))
					require.NoError(t, err)
					c.Add(time.Second)
					b.Set(int64(i*10 + 1))
					_, err = b.Write([]byte("failed\n"))
					require.NoError(t, err)
					printed = append(printed, fmt.Sprintf("item %d: failed", i))
				}
				tail := out.String()[seen:]
				seen += len(tail)
				scr.feed(tail)
				for _, f := range frames(tail) {
					require.LessOrEqual(t, textWidth(f), width-1, "frame %q", f)
					requireWholeWords(t, f, []string{desc}, "ETA unknown")
					require.Regexp(t, barToken, f)
					require.NotContains(t, f, "items/hr")
				}
			}
			all := frames(out.String())
			require.NotEmpty(t, all)
			require.Equal(t, append(printed, all[len(all)-1]), scr.lines(),
				"item output above, one bar line below, no stale bar rows")
		})
	}
}

func TestFirstFrameHasNoRate(t *testing.T) {
	t.Parallel()
	t.Run("FromZero", func(t *testing.T) {
		t.Parallel()
		b, out, c := setup(t, 80)
		b.SetTotal(100)
		b.Set(0)
		require.Equal(t, []string{"job  0% |░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░| 0/100"}, frames(out.String()))
		c.Add(500 * time.Millisecond)
		b.Set(5)
		require.NotContains(t, out.String(), "items/", "no rate before a second has passed")
		c.Add(500 * time.Millisecond)
		b.Set(10)
		all := frames(out.String())
		require.Contains(t, all[len(all)-1], "  10.0 items/s")
	})
	t.Run("AttachedMidway", func(t *testing.T) {
		t.Parallel()
		b, out, c := setup(t, 80)
		b.SetTotal(10000)
		b.Set(5000)
		c.Add(2 * time.Second)
		b.Set(5000)
		require.NotContains(t, out.String(), "items/", "no rate before an item is done")
		c.Add(time.Second)
		b.Set(5015)
		all := frames(out.String())
		require.Contains(t, all[len(all)-1], "  5.00 items/s", "the rate counts from the first count seen, not from zero")
	})
}

func TestRateIsOverTheLastMinute(t *testing.T) {
	t.Parallel()
	var m rateMeter
	t0 := newClock().Now()
	var n int64
	for s := range 121 { // 10 items/s for two minutes
		n = int64(s * 10)
		m.observe(t0.Add(time.Duration(s)*time.Second), n)
	}
	r, ok := m.rate(t0.Add(120*time.Second), n)
	require.True(t, ok)
	require.InDelta(t, 10.0, r, 1e-9)
	for s := 121; s <= 150; s++ { // then nothing for half a minute
		m.observe(t0.Add(time.Duration(s)*time.Second), n)
	}
	r, ok = m.rate(t0.Add(150*time.Second), n)
	require.True(t, ok)
	require.InDelta(t, 5.0, r, 1e-9, "300 items over the last 60 s")
	require.LessOrEqual(t, len(m.samples), int(rateWindow/sampleEvery)+1, "samples stay bounded")

	m.observe(t0.Add(151*time.Second), 3)
	_, ok = m.rate(t0.Add(151*time.Second), 3)
	require.False(t, ok, "a count that went back starts the rate again")
}

func TestFormatRate(t *testing.T) {
	t.Parallel()
	for r, want := range map[float64]string{
		0: "0 items/s", 0.001: "<0.01 items/s", 0.25: "0.25 items/s", 9.99: "9.99 items/s",
		12.5: "12.5 items/s", 99.9: "99.9 items/s", 1234.4: "1234 items/s",
	} {
		require.Equal(t, want, formatRate(r), "rate %v", r)
	}
}

func TestPlainModeWritesLinesOnly(t *testing.T) {
	t.Parallel()
	b, out, c := setup(t, 0)
	b.SetTotal(10)
	b.Describe("job", "Running")
	b.SetETA("ETA 7s")
	for i := 1; i <= 6; i++ {
		c.Add(time.Second)
		b.Set(int64(i))
		b.Println("item", i)
	}
	b.Clear()
	b.Finish()
	b.Set(7)
	require.Equal(t, `item 1
job Running: 2/10 (20%), 1.00 items/s, ETA 7s
item 2
item 3
job Running: 4/10 (40%), 1.00 items/s, ETA 7s
item 4
item 5
job Running: 6/10 (60%), 1.00 items/s, ETA 7s
item 6
`, out.String())
	require.Equal(t, "job Running: 6/10 (60%), 1.00 items/s, ETA 7s", b.Line())
}

func TestPlainModeWaitsForAPartialLine(t *testing.T) {
	t.Parallel()
	b, out, c := setup(t, 0)
	_, err := b.Write([]byte("half"))
	require.NoError(t, err)
	c.Add(5 * time.Second)
	b.Set(1)
	_, err = b.Write([]byte(" done\n"))
	require.NoError(t, err)
	c.Add(5 * time.Second)
	b.Set(2)
	require.Equal(t, "half done\njob: 2, 0.20 items/s\n", out.String())
}

func TestWriteHoldsTheBarBackUntilTheLineEnds(t *testing.T) {
	t.Parallel()
	b, out, c := setup(t, 80)
	scr := newScreen(t, 80)
	b.Set(1)
	_, err := b.Write([]byte("partial"))
	require.NoError(t, err)
	c.Add(time.Second)
	b.Set(2)
	scr.feed(out.String())
	require.Equal(t, []string{"partial"}, scr.lines(), "the bar never overwrites a partial line")
	_, err = b.Write([]byte(" end\n"))
	require.NoError(t, err)
	scr = newScreen(t, 80)
	scr.feed(out.String())
	require.Equal(t, []string{"partial end", "job  2  1.00 items/s"}, scr.lines())
}

func TestFinishClearsTheBar(t *testing.T) {
	t.Parallel()
	b, out, _ := setup(t, 80)
	b.Set(1)
	b.Println("x")
	b.Finish()
	after := out.Len()
	b.Set(5)
	b.Finish()
	require.Equal(t, after, out.Len(), "nothing drawn after Finish")
	b.Println("after")
	scr := newScreen(t, 80)
	scr.feed(out.String())
	require.Equal(t, []string{"x", "after"}, scr.lines())
}

func TestClearRemovesTheBarUntilTheNextSet(t *testing.T) {
	t.Parallel()
	b, out, c := setup(t, 80)
	b.Set(1)
	b.Clear()
	_, _ = out.Write([]byte("raw\n"))
	scr := newScreen(t, 80)
	scr.feed(out.String())
	require.Equal(t, []string{"raw"}, scr.lines())
	c.Add(time.Millisecond)
	b.Set(2)
	scr = newScreen(t, 80)
	scr.feed(out.String())
	require.Equal(t, []string{"raw", "job  2"}, scr.lines(), "a cleared bar comes back at once, throttle or not")
}

func TestSetIsThrottled(t *testing.T) {
	t.Parallel()
	b, out, c := setup(t, 80)
	b.Set(1)
	before := out.Len()
	c.Add(50 * time.Millisecond)
	b.Set(2)
	require.Equal(t, before, out.Len(), "no redraw within 100ms")
	c.Add(50 * time.Millisecond)
	b.Set(3)
	all := frames(out.String())
	require.Equal(t, "job  3", all[len(all)-1])

	idle, idleOut, idleClock := setup(t, 80)
	idle.Set(0)
	before = idleOut.Len()
	idleClock.Add(time.Second)
	idle.Describe("job")
	idle.Set(0)
	require.Equal(t, before, idleOut.Len(), "an unchanged line is not written again")
}

func TestConcurrentOutputAndSet(t *testing.T) {
	t.Parallel()
	b, out, c := setup(t, 80)
	b.SetTotal(200)
	var wg sync.WaitGroup
	want := map[string]bool{}
	for w := range 4 {
		for i := range 50 {
			want[fmt.Sprintf("worker %d line %d", w, i)] = true
		}
		wg.Go(func() {
			for i := range 50 {
				b.Println(fmt.Sprintf("worker %d line %d", w, i))
			}
		})
	}
	wg.Go(func() {
		for i := range 200 {
			c.Add(100 * time.Millisecond)
			b.Set(int64(i + 1))
		}
	})
	wg.Wait()
	scr := newScreen(t, 80)
	scr.feed(out.String())
	lines := scr.lines()
	require.Len(t, lines, 201)
	got := map[string]bool{}
	for _, l := range lines[:200] {
		got[l] = true
	}
	require.Equal(t, want, got, "every line whole, none lost")
	require.Regexp(t, `^job  100% \|█+\| 200/200  [0-9.]+ items/s$`, lines[200])
}

func TestColorStaysOutOfTheWidth(t *testing.T) {
	t.Parallel()
	out, c := &testkit.Buffer{}, newClock()
	b := newBar(out, 100, "job", config{terminal: true, color: true, width: func() int { return 40 }, now: c.Now})
	b.Set(50)
	// "job  50% " and " 50/100" leave 23 columns: a bar of 21 cells.
	require.Contains(t, out.String(), "|"+colorFill+strings.Repeat(cellFilled, 10)+colorReset+strings.Repeat(cellEmpty, 11)+"|")
	scr := newScreen(t, 40)
	scr.feed(out.String())
	require.Len(t, scr.lines(), 1)
	require.Equal(t, 39, textWidth(scr.lines()[0]))

	plain, plainOut, _ := setup(t, 40)
	plain.SetTotal(100)
	plain.Set(50)
	require.Contains(t, plainOut.String(), cellFilled)
	require.NotContains(t, plainOut.String(), colorFill)
}

func TestDescribeCleansControlCharacters(t *testing.T) {
	t.Parallel()
	b, out, _ := setup(t, 80)
	b.Describe("a\nb\t\tc\r\x1b[31m", "", "  ")
	b.SetETA("ETA\n5s")
	b.Set(1)
	scr := newScreen(t, 80)
	scr.feed(out.String())
	require.Equal(t, []string{"a b c [31m  1  ETA 5s"}, scr.lines())
}

func TestNewOffATerminal(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	b := New(&buf, 10, "pushing")
	require.False(t, b.cfg.terminal)
	require.False(t, b.cfg.color)
	require.Equal(t, defaultWidth, b.cfg.width())
	b.Set(3)
	b.Finish()
	require.Empty(t, buf.String(), "no line before two seconds have passed")

	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	require.NoError(t, err)
	defer f.Close()
	require.False(t, IsTerminal(f))
	require.Equal(t, defaultWidth, termWidth(f), "a file has no width: the default")
}
