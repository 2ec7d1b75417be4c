package store

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// Fuzz targets of the store's reply decoders and its message redaction.
// `go test` runs their seeds; `go test -fuzz FuzzDecodeRecord
// ./internal/store/` (one target at a time) searches further.

// encodeRecord writes a lease record as lua/lib.lua's encode does, from
// its documented format: "n|fence|ids|atts|lens\n" then the payloads. It
// is the test's own encoder, to hold the Go decoder to the format.
func encodeRecord(fence int64, ids []int64, atts []int, pays [][]byte, indexed bool) string {
	var r []string
	for i := 0; i < len(ids); {
		j := i
		for j+1 < len(ids) && ids[j+1] == ids[j]+1 {
			j++
		}
		if j > i {
			r = append(r, fmt.Sprintf("%d-%d", ids[i], ids[j]))
		} else {
			r = append(r, strconv.FormatInt(ids[i], 10))
		}
		i = j + 1
	}
	a := ""
	for _, v := range atts {
		if v != 1 {
			s := make([]string, len(atts))
			for k, v := range atts {
				s[k] = strconv.Itoa(v)
			}
			a = strings.Join(s, ",")
			break
		}
	}
	lens, body := "i", ""
	if !indexed {
		joined := strings.Join(bytesToStrings(pays), "\n")
		if strings.Count(joined, "\n") == len(pays)-1 {
			lens, body = "n", joined
		} else {
			l := make([]string, len(pays))
			for k, p := range pays {
				l[k] = strconv.Itoa(len(p))
			}
			lens, body = strings.Join(l, ","), strings.Join(bytesToStrings(pays), "")
		}
	}
	return fmt.Sprintf("%d|%d|%s|%s|%s\n%s", len(ids), fence, strings.Join(r, ","), a, lens, body)
}

func bytesToStrings(b [][]byte) []string {
	s := make([]string, len(b))
	for i, p := range b {
		s[i] = string(p)
	}
	return s
}

// FuzzLeaseRecordRoundTrip: a lease record written in the documented
// format decodes to the items it was written from, whatever the payloads
// hold (newlines, separators, nothing).
func FuzzLeaseRecordRoundTrip(f *testing.F) {
	f.Add(int64(7), int64(0), []byte{1, 1, 1}, []byte{}, "a\xffb\xffc", false)
	f.Add(int64(1), int64(40), []byte{1, 5, 1, 0}, []byte{2, 1, 3}, "x\ny\xff\xff|,:", false)
	f.Add(int64(9), int64(3), []byte{2, 1}, []byte{1, 1}, "", true)
	f.Add(int64(2), int64(100), []byte{}, []byte{}, "only", false)
	f.Add(int64(5), int64(0), []byte{3}, []byte{0}, "\n\xff\n", false)
	f.Fuzz(func(t *testing.T, fence, first int64, gaps, atts []byte, payloads string, indexed bool) {
		if first < 0 || fence < 0 || len(gaps) > 200 {
			t.Skip()
		}
		// Items: ids from first by the gaps (a gap of 0 would repeat an
		// id: a lease never holds one twice), attempts from atts (1 when
		// missing), payloads split at 0xff.
		pays := strings.Split(payloads, "\xff")
		n := len(gaps) + 1
		for len(pays) < n {
			pays = append(pays, "")
		}
		ids := []int64{first}
		for _, g := range gaps {
			ids = append(ids, ids[len(ids)-1]+int64(max(g, 1)))
		}
		at := make([]int, n)
		bs := make([][]byte, n)
		for i := range n {
			at[i] = 1
			if i < len(atts) {
				at[i] = int(atts[i]) + 1
			}
			bs[i] = []byte(pays[i])
			if indexed {
				bs[i] = []byte(strconv.FormatInt(ids[i], 10))
			}
		}
		rec := encodeRecord(fence, ids, at, bs, indexed)
		l, err := decodeRecord(rec)
		if err != nil {
			t.Fatalf("decode %q: %v", rec, err)
		}
		if l.Fence != fence || len(l.Items) != n {
			t.Fatalf("decode %q: fence %d, %d items; want %d, %d", rec, l.Fence, len(l.Items), fence, n)
		}
		for i, it := range l.Items {
			if it.ID != ids[i] || it.Attempt != at[i] || string(it.Payload) != string(bs[i]) {
				t.Fatalf("decode %q: item %d is %d@%d %q; want %d@%d %q", rec, i, it.ID, it.Attempt, it.Payload,
					ids[i], at[i], bs[i])
			}
		}
	})
}

// FuzzDecodeRecord: any reply, however malformed, is decoded or refused
// with ErrReply, never a panic; what is decoded is what the header says.
func FuzzDecodeRecord(f *testing.F) {
	for _, s := range []string{
		"3|17|0-2||n\na\nb\nc",
		"2|5|4,9|2,1|1,2\nxyz",
		"2|5|4,9|2,1|i\n",
		"1|1|0||n\n",
		"0|1|||\n",
		"3|1|0-2||n\na\nb",
		"2|1|0-1||3,9\nabc",
		"2|1|5-3||n\na\nb",
		"9999999999|1|0||n\n",
		"1|x|0||n\na",
		"2|1|0-1|1,2,3|n\na\nb",
		"1|1|0||-1\n",
		"1|1|0||9223372036854775807\na",
		"1|1|0-9999999999||n\na",
		"2|1|9223372036854775806-9223372036854775807||n\na\nb",
		"no header",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rec string) {
		if len(rec) > 4096 {
			t.Skip()
		}
		l, err := decodeRecord(rec)
		if err != nil {
			if !strings.Contains(err.Error(), ErrReply.Error()) {
				t.Fatalf("decode %q: an error that is not ErrReply: %v", rec, err)
			}
			return
		}
		n, _ := strconv.Atoi(strings.SplitN(rec, "|", 2)[0])
		if len(l.Items) != n {
			t.Fatalf("decode %q: %d items, header says %d", rec, len(l.Items), n)
		}
		total := 0
		for _, it := range l.Items {
			total += len(it.Payload)
		}
		if total > len(rec) {
			t.Fatalf("decode %q: payloads longer than the record", rec)
		}
	})
}

// FuzzParseSettle: a settle reply in its documented format
// ("acked,failed,released,refused,dead,failjob|token,...") reads back as
// written; anything else is refused with ErrReply, never a panic.
func FuzzParseSettle(f *testing.F) {
	f.Add(3, 0, 1, 2, 0, false, "", "1,0,0,0,0,0|")
	f.Add(0, 2, 0, 5, 2, true, "s1.4,s2.9", "x")
	f.Add(10, 1, 1, 1, 1, false, "tok", "1,2,3|a,b")
	f.Add(0, 0, 0, 0, 0, false, "", "1,2,3,4,5,6,7|")
	f.Fuzz(func(t *testing.T, acked, failed, released, refused, dead int, failJob bool, gone, raw string) {
		if _, err := parseSettle(raw); err != nil && !strings.Contains(err.Error(), ErrReply.Error()) {
			t.Fatalf("parse %q: an error that is not ErrReply: %v", raw, err)
		}
		if acked < 0 || failed < 0 || released < 0 || refused < 0 || dead < 0 || strings.ContainsAny(gone, "|") {
			return
		}
		fj := 0
		if failJob {
			fj = 1
		}
		reply := fmt.Sprintf("%d,%d,%d,%d,%d,%d|%s", acked, failed, released, refused, dead, fj, gone)
		r, err := parseSettle(reply)
		if err != nil {
			t.Fatalf("parse %q: %v", reply, err)
		}
		want := SettleResult{Acked: acked, Failed: failed, Released: released, Refused: refused, Dead: dead, FailJob: failJob}
		if gone != "" {
			want.Gone = strings.Split(gone, ",")
		}
		if fmt.Sprint(r) != fmt.Sprint(want) {
			t.Fatalf("parse %q: %+v, want %+v", reply, r, want)
		}
	})
}

// FuzzParseDead: a dead item in its documented format
// ("id:attempts:errlen:" error payload) reads back as written, whatever the
// error and payload hold; any other member is refused, never a panic.
func FuzzParseDead(f *testing.F) {
	f.Add(int64(4), 3, "lease expired", "payload", "4:3:4:boompay")
	f.Add(int64(0), 1, "", "", "0:1:0:")
	f.Add(int64(12), 2, "a:b:c", "x:y\n", "1:2:99:short")
	f.Add(int64(7), 1, "err", "", "7:1:-1:err")
	f.Fuzz(func(t *testing.T, id int64, att int, errText, payload, raw string) {
		if d, ok := ParseDead(raw); ok {
			if len(d.LastError)+len(d.Payload) > len(raw) || d.Item != string(d.Payload) {
				t.Fatalf("parse %q: %+v does not fit the member", raw, d)
			}
		}
		if id < 0 || att < 0 {
			return
		}
		member := fmt.Sprintf("%d:%d:%d:%s%s", id, att, len(errText), errText, payload)
		d, ok := ParseDead(member)
		if !ok {
			t.Fatalf("parse %q: refused", member)
		}
		if d.ID != id || d.Attempts != att || d.LastError != errText || string(d.Payload) != payload || d.Item != payload {
			t.Fatalf("parse %q: %+v", member, d)
		}
	})
}

// FuzzRedact: a URL's password never survives Redact, wherever the URL
// sits in a message; and Redact ends and does not panic on any message.
func FuzzRedact(f *testing.F) {
	f.Add("dial tcp ", "redis", "user", "s3cret", "redis.example:6379", ": connection refused")
	f.Add("", "rediss", "", "p@ss", "h", "")
	f.Add("x://@ ", "redis+sentinel", "default", "pw", "a:1,b:2/mymaster", " '\"")
	f.Add("", "redis", "u", "pw", "h@evil", "")
	f.Fuzz(func(t *testing.T, prefix, scheme, user, pass, host, suffix string) {
		_ = Redact(prefix + scheme + suffix + user + pass + host) // any text: it must end
		clean := func(s string) bool { return !strings.ContainsAny(s, " \t\n\"'@") && !strings.Contains(s, "://") }
		if pass == "" || !clean(user) || !clean(host) || !clean(scheme) || strings.ContainsAny(pass, " \t\n\"'") ||
			strings.Contains(prefix, "://") || strings.ContainsAny(prefix, "@") || strings.Contains(pass, "://") ||
			(suffix != "" && !strings.ContainsAny(suffix[:1], " \t\n\"'")) {
			return
		}
		msg := prefix + scheme + "://" + user + ":" + pass + "@" + host + suffix
		out := Redact(msg)
		if strings.Contains(out, ":"+pass+"@") {
			t.Fatalf("Redact(%q) = %q: the password is still there", msg, out)
		}
		if !strings.Contains(out, host) {
			t.Fatalf("Redact(%q) = %q: the host is gone", msg, out)
		}
	})
}
