package security_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/redistest"
	"github.com/workq/workq/internal/testkit"
)

// hostileItems look like shell, flags, paths, format strings and
// placeholders; none may be interpreted. The touch commands would leave a
// file behind if any shell ran them.
func hostileItems(out string) []string {
	return []string{
		"; rm -rf /", "$(reboot)", "`reboot`", "{}", "{}{}", "pre{}post", "../../etc/passwd", "/etc/shadow",
		"$WORKQ_JOB", "${HOME}", "$1", "--help", "-rf", "-", "--", "a b  c ", "  leading and trailing  ",
		"'single'", `"double"`, `\backslash\`, "*", "?", "~", "[a-z]", "|cat /etc/passwd", "&& echo pwned", "> /tmp/x",
		"line1\nline2", "tab\there", "\r\n", "ünïcødé ✓ 日本", "%s%n%x%d", "\x1b[31mred\x1b[0m", "\x7f\x01", "0",
		"\xff\xfe not utf-8", strings.Repeat("long-", 20_000),
		fmt.Sprintf("; touch %q", filepath.Join(out, "pwned1")),
		fmt.Sprintf("$(touch %q)", filepath.Join(out, "pwned2")),
		fmt.Sprintf("`touch %q`", filepath.Join(out, "pwned3")),
	}
}

// TestItemsAreNeverInterpreted pushes hostile items NUL-separated and
// checks that each reaches the command byte for byte: on stdin, as the one
// argument that {} becomes, inside a longer argument, and in a batch.
func TestItemsAreNeverInterpreted(t *testing.T) {
	redistest.Available(t)
	srv := redistest.ForTest(t)
	out := t.TempDir()
	items := hostileItems(out)
	var in bytes.Buffer
	for _, it := range items {
		in.WriteString(it)
		in.WriteByte(0)
	}
	c := newCLI(t, "WORKQ_REDIS_URL="+srv.URL(), "OUT="+out)
	bins := testkit.Build(t)
	co, wk := bins.Coordinator, bins.Worker

	t.Run("PerItemStdinAndArguments", func(t *testing.T) {
		c.run(0, co, "create", "hostile", "--batch-size", "7")
		c.runIn(0, bytes.NewReader(in.Bytes()), co, "push", "hostile", "--null", "-f", "-", "--seal")
		// The command is the user's: it writes what it got, quoted properly.
		script := `id=$WORKQ_ITEM_ID; cat > "$OUT/$id.stdin"; printf %s "$1" > "$OUT/$id.arg"; printf %s "$2" > "$OUT/$id.arg2"; printf %s "$#" > "$OUT/$id.argc"`
		c.run(0, wk, "--job", "hostile", "--concurrency", "3", "--", "sh", "-c", script, "sh", "{}", "<{}>")
		for id, it := range items {
			read := func(ext string) string {
				b, err := os.ReadFile(filepath.Join(out, fmt.Sprintf("%d.%s", id, ext)))
				require.NoError(t, err, "item %d %q", id, it)
				return string(b)
			}
			require.Equal(t, it, read("stdin"), "item %d on stdin", id)
			require.Equal(t, it, read("arg"), "item %d as {}", id)
			require.Equal(t, "<"+it+">", read("arg2"), "item %d inside an argument", id)
			require.Equal(t, "2", read("argc"), "item %d: {} is one argument", id)
		}
	})

	t.Run("BatchStdin", func(t *testing.T) {
		c.run(0, co, "create", "hostile-batch", "--batch-size", "1000")
		c.runIn(0, bytes.NewReader(in.Bytes()), co, "push", "hostile-batch", "--null", "-f", "-", "--seal")
		c.run(0, wk, "--job", "hostile-batch", "--batch-exec", "--null", "--", "sh", "-c", `cat > "$OUT/batch.$$"`)
		files, err := filepath.Glob(filepath.Join(out, "batch.*"))
		require.NoError(t, err)
		var got []string
		for _, f := range files {
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			require.True(t, bytes.HasSuffix(b, []byte{0}), "each item ends with NUL")
			got = append(got, strings.Split(string(b[:len(b)-1]), "\x00")...)
		}
		want := append([]string(nil), items...)
		sort.Strings(want)
		sort.Strings(got)
		require.Equal(t, want, got)
	})

	t.Run("NoShellRanAnItem", func(t *testing.T) {
		for _, f := range []string{"pwned1", "pwned2", "pwned3"} {
			require.NoFileExists(t, filepath.Join(out, f))
		}
	})
}
