package store

import (
	"errors"
	"testing"
)

// TestDecodeRecordTrustsNoCount: a malformed lease record (a corrupted
// reply, a key written by something else) is refused with ErrReply; its
// counts and lengths size no allocation and no loop beyond what it holds.
func TestDecodeRecordTrustsNoCount(t *testing.T) {
	t.Parallel()
	for _, rec := range []string{
		"9999999999|1|0||n\na",          // a count no lease holds
		"1|1|0-9999999999||n\na",        // a range past the count
		"1|1|0||-1\n",                   // a negative length
		"1|1|0||9223372036854775807\na", // a length that overflows
	} {
		_, err := decodeRecord(rec)
		if !errors.Is(err, ErrReply) {
			t.Errorf("decode %q: %v, want ErrReply", rec, err)
		}
	}
	// Ids up to the largest int64 end the loop that expands them.
	l, err := decodeRecord("3|1|9223372036854775806-9223372036854775807,0||n\na\nb\nc")
	if err != nil || len(l.Items) != 3 || l.Items[1].ID != 1<<63-1 || l.Items[2].ID != 0 {
		t.Fatalf("ids that end at the largest int64: %+v, %v", l, err)
	}
}
