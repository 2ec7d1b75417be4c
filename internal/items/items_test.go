package items_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/items"
	"github.com/workq/workq/pkg/queue"
)

func readAll(t *testing.T, in string, o items.Options) ([]string, error) {
	t.Helper()
	r := items.NewReader(strings.NewReader(in), o)
	var out []string
	for {
		it, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, string(it))
	}
}

func TestReader(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   string
		o    items.Options
		want []string
		err  string
	}{
		{name: "LinesWithFinalNewline", in: "a\nb\n", want: []string{"a", "b"}},
		{name: "LinesWithoutFinalNewline", in: "a\nb", want: []string{"a", "b"}},
		{name: "CRLFLines", in: "a\r\nb\r\n", want: []string{"a", "b"}},
		{name: "EmptyInputHasNoItems", in: "", want: nil},
		{name: "EmptyLineIsRefusedWithItsNumber", in: "a\n\nb\n", err: "item 2 is empty"},
		{name: "EmptyLineSkippedOnRequest", in: "a\n\nb\n", o: items.Options{SkipEmpty: true}, want: []string{"a", "b"}},
		{name: "NULInALineIsRefused", in: "a\x00b\n", err: "must be pushed with --null"},
		{name: "InvalidUTF8LineIsRefused", in: "ok\n\xff\xfe\n", err: "item 2 is not valid UTF-8"},
		{name: "NULSeparatedItemsMayHoldNewlines", in: "a\nb\x00c\x00", o: items.Options{NUL: true}, want: []string{"a\nb", "c"}},
		{name: "NULSeparatedBinary", in: "\xff\n\r\x00", o: items.Options{NUL: true}, want: []string{"\xff\n\r"}},
		{name: "ItemAtTheLimit", in: "abcd\n", o: items.Options{MaxBytes: 4}, want: []string{"abcd"}},
		{name: "ItemOneByteOverTheLimit", in: "abc\nabcde\n", o: items.Options{MaxBytes: 4}, err: "item 2 is larger than the limit of 4 bytes"},
		{name: "HugeLineIsRefusedWithoutBufferingIt", in: strings.Repeat("x", 3<<20), o: items.Options{MaxBytes: 1 << 20}, err: "item 1 is larger"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := readAll(t, tc.in, tc.o)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				require.ErrorIs(t, err, queue.ErrInvalidItem)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	require.NoError(t, items.Check(1, []byte("x"), items.Options{}))
	require.ErrorIs(t, items.Check(1, nil, items.Options{}), queue.ErrInvalidItem)
	require.ErrorContains(t, items.Check(3, []byte("xyz"), items.Options{MaxBytes: 2}), "item 3 is larger than the limit of 2 bytes")
}

// FuzzReader checks that any input is either read whole, item by item, or
// refused; never a panic, and never an item that breaks the rules.
func FuzzReader(f *testing.F) {
	for _, s := range []string{"a\nb\n", "a\x00b", "\r\n\r\n", "\xff", "x\n\n", strings.Repeat("y", 70)} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, in string, nul bool) {
		o := items.Options{NUL: nul, MaxBytes: 64, SkipEmpty: true}
		got, err := readAll(t, in, o)
		if err != nil {
			require.ErrorIs(t, err, queue.ErrInvalidItem)
			return
		}
		sep := "\n"
		if nul {
			sep = "\x00"
		}
		for _, it := range got {
			require.NotEmpty(t, it)
			require.LessOrEqual(t, len(it), 64)
			require.NotContains(t, it, sep)
		}
		if nul {
			// NUL mode keeps every byte: the items are the non-empty fields.
			var want []string
			for _, f := range strings.Split(in, "\x00") {
				if f != "" {
					want = append(want, f)
				}
			}
			require.Equal(t, want, got)
		}
	})
}
