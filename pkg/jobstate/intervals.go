package jobstate

import (
	"strconv"
	"strings"
)

// Intervals formats the set bits of a Redis bitmap (bit 0 is the most
// significant bit of the first byte, as SETBIT numbers them), limited to
// indexes below n, as a Kubernetes interval string such as "0-3,5".
func Intervals(bitmap []byte, n int) string {
	var b strings.Builder
	start := -1
	flush := func(end int) {
		if start >= 0 {
			writeRange(&b, start, end)
		}
		start = -1
	}
	for i := 0; i < n; i++ {
		set := i/8 < len(bitmap) && bitmap[i/8]&(0x80>>(i%8)) != 0
		switch {
		case set && start < 0:
			start = i
		case !set && start >= 0:
			flush(i - 1)
		}
	}
	flush(n - 1)
	return b.String()
}

// IndexList formats sorted, distinct indexes as an interval string.
func IndexList(idx []int) string {
	if len(idx) == 0 {
		return ""
	}
	n := idx[len(idx)-1] + 1
	bm := make([]byte, (n+7)/8)
	for _, i := range idx {
		if i >= 0 {
			bm[i/8] |= 0x80 >> (i % 8)
		}
	}
	return Intervals(bm, n)
}

// ShiftIntervals adds by to every index of an interval string ("0-3,5",
// perhaps ending ",..." where it was cut), for a shard whose indexes
// start at by.
func ShiftIntervals(list string, by int) string {
	if by == 0 || list == "" {
		return list
	}
	var b strings.Builder
	for part := range strings.SplitSeq(list, ",") {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			b.WriteString(part) // "...": the list was cut
			continue
		}
		b.WriteString(strconv.Itoa(a + by))
		if isRange {
			z, _ := strconv.Atoi(hi)
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(z + by))
		}
	}
	return b.String()
}

// JoinIntervals concatenates interval strings whose indexes ascend from
// one to the next (a sharded Job's blocks), merging ranges that meet at
// the joins: "0-2" and "3-5,7" make "0-5,7". A list cut short ("...")
// ends the result.
func JoinIntervals(lists ...string) string {
	var b strings.Builder
	lo, hi := -1, -1
	flush := func() {
		if lo >= 0 {
			writeRange(&b, lo, hi)
		}
		lo, hi = -1, -1
	}
	for _, l := range lists {
		if l == "" {
			continue
		}
		for part := range strings.SplitSeq(l, ",") {
			a, z, isRange := strings.Cut(part, "-")
			x, err := strconv.Atoi(a)
			if err != nil {
				flush()
				if b.Len() > 0 {
					b.WriteByte(',')
				}
				b.WriteString(part)
				return b.String()
			}
			y := x
			if isRange {
				y, _ = strconv.Atoi(z)
			}
			if lo >= 0 && x == hi+1 {
				hi = y
				continue
			}
			flush()
			lo, hi = x, y
		}
	}
	flush()
	return b.String()
}

// writeRange appends the interval lo-hi ("lo" alone when hi is lo) to an
// interval string.
func writeRange(b *strings.Builder, lo, hi int) {
	if b.Len() > 0 {
		b.WriteByte(',')
	}
	b.WriteString(strconv.Itoa(lo))
	if hi > lo {
		b.WriteByte('-')
		b.WriteString(strconv.Itoa(hi))
	}
}
