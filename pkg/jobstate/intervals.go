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
		if start < 0 {
			return
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(start))
		if end > start {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(end))
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
