package items_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/items"
	"github.com/workq/workq/pkg/queue"
)

// readReference is an independent statement of the reader's rules: split
// at the separator (a final separator ends the last item), drop one "\r"
// per line in line mode, then refuse the first item that is too large,
// empty (unless skipped), or, in line mode, holds a NUL byte or is not
// UTF-8. It returns the items before the first refusal, and the refused
// item's number and reason.
func readReference(in string, o items.Options) (out []string, errN int64, reason string) {
	maxBytes := o.MaxBytes
	if maxBytes <= 0 {
		maxBytes = items.DefaultMaxBytes
	}
	sep := "\n"
	if o.NUL {
		sep = "\x00"
	}
	if in == "" {
		return nil, 0, ""
	}
	recs := strings.Split(in, sep)
	if strings.HasSuffix(in, sep) {
		recs = recs[:len(recs)-1]
	}
	for i, r := range recs {
		n := int64(i + 1)
		if !o.NUL {
			r = strings.TrimSuffix(r, "\r")
		}
		switch {
		case len(r) > maxBytes:
			return out, n, "is larger than the limit"
		case r == "" && o.SkipEmpty:
			continue
		case r == "":
			return out, n, "is empty"
		case !o.NUL && strings.Contains(r, "\x00"):
			return out, n, "holds a NUL byte"
		case !o.NUL && !utf8.ValidString(r):
			return out, n, "is not valid UTF-8"
		}
		out = append(out, r)
	}
	return out, 0, ""
}

// FuzzReaderMatchesReference checks the streaming reader item by item
// against readReference, in both modes, with and without skipping empty
// items, for any limit: the same items, then the same refusal.
func FuzzReaderMatchesReference(f *testing.F) {
	for _, s := range []string{"a\nb\n", "a\nb", "a\r\nb\r\n", "\r\n", "\r", "a\n\nb", "a\x00b\n", "\xff\n", "ok\n\xff\xfe",
		"a\nb\x00c\x00", "\x00\x00", "abcd\nabcde\n", "x\r\r\n", "é\n", strings.Repeat("y", 70) + "\n"} {
		for _, nul := range []bool{false, true} {
			f.Add(s, nul, false, uint8(4))
			f.Add(s, nul, true, uint8(0))
		}
	}
	f.Fuzz(func(t *testing.T, in string, nul, skipEmpty bool, maxBytes uint8) {
		o := items.Options{NUL: nul, SkipEmpty: skipEmpty, MaxBytes: int(maxBytes)}
		got, err := readAll(t, in, o)
		want, wantN, reason := readReference(in, o)
		require.Equal(t, want, got, "items of %q with %+v", in, o)
		if reason == "" {
			require.NoError(t, err)
			return
		}
		require.ErrorIs(t, err, queue.ErrInvalidItem)
		var ie *items.Error
		require.True(t, errors.As(err, &ie), "%T", err)
		require.Equal(t, wantN, ie.N, "the refused item's number in %q", in)
		require.ErrorContains(t, err, fmt.Sprintf("item %d %s", wantN, reason))
	})
}

// FuzzCheck: an item given as an argument is accepted exactly when it is
// not empty and not over the limit.
func FuzzCheck(f *testing.F) {
	f.Add([]byte("x"), uint8(1))
	f.Add([]byte(""), uint8(0))
	f.Add([]byte("xyz"), uint8(2))
	f.Add([]byte("\x00\xff"), uint8(2))
	f.Fuzz(func(t *testing.T, item []byte, maxBytes uint8) {
		limit := int(maxBytes)
		if limit == 0 {
			limit = items.DefaultMaxBytes
		}
		err := items.Check(7, item, items.Options{MaxBytes: int(maxBytes)})
		if len(item) == 0 || len(item) > limit {
			require.ErrorIs(t, err, queue.ErrInvalidItem)
			require.ErrorContains(t, err, "item 7 ")
			return
		}
		require.NoError(t, err)
	})
}
