package faults_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// storeDir is the package whose scripts and Go code this test reads.
var storeDir = filepath.Join("..", "..", "internal", "store")

// TestLeaseTimeIsTheServers proves by inspection what scenario 7 of the
// fault suite shows by running: every time a script compares comes from
// the Redis server (TIME), never from a worker. It fails when a script
// reads the time other than through now_ms(), when a script is documented
// to take a time argument or does arithmetic of an argument with the time,
// or when Go code of the store that runs a script reads the local clock.
func TestLeaseTimeIsTheServers(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join(storeDir, "lua", "*.lua"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 10, "the scripts were found")
	lua := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		lua[filepath.Base(f)] = string(b)
	}
	lib, ok := lua["lib.lua"]
	require.True(t, ok, "lib.lua holds the shared helpers")

	t.Run("ScriptsReadTheServerClock", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, 1, strings.Count(lib, "redis.call('TIME')"), "one now_ms() in lib.lua reads TIME")
		require.Regexp(t, `(?s)local function now_ms\(\)\s*local t = redis.call\('TIME'\)`, lib)
		// Anything named now, or a time field, takes its value from now_ms().
		assign := regexp.MustCompile(`(?m)\b(now|t0|at|ts)\s*=\s*([^=\n][^\n]*)$`)
		users := 0
		for name, src := range lua {
			if name != "lib.lua" {
				require.NotContains(t, src, "'TIME'", "%s reads TIME itself instead of now_ms()", name)
				require.NotContains(t, src, `"TIME"`, "%s reads TIME itself", name)
			}
			for _, m := range assign.FindAllStringSubmatch(src, -1) {
				if m[1] == "now" {
					require.Equal(t, "now_ms()", strings.TrimSpace(m[2]), "%s: now comes from the server's clock: %s", name, m[0])
				}
			}
			if strings.Contains(src, "now_ms()") {
				users++
			}
		}
		for _, s := range []string{"lease.lua", "settle.lua", "heartbeat.lua", "reap.lua", "transition.lua", "register.lua", "push.lua", "snapshot.lua"} {
			require.Contains(t, lua[s], "now_ms()", "%s takes its time from TIME", s)
		}
		require.GreaterOrEqual(t, users, 8)
	})

	t.Run("NoScriptTakesAClientTime", func(t *testing.T) {
		t.Parallel()
		bad := regexp.MustCompile(`(?i)\b(time|times|now|clock|deadline|deadlines|expiry|expires|expiring|timestamp|when|ms)\b`)
		documented := 0
		for name, src := range lua {
			if name == "lib.lua" {
				continue
			}
			doc := argvDoc(src)
			require.NotEmpty(t, doc, "%s documents its ARGV in its header", name)
			documented++
			require.NotRegexp(t, bad, doc, "%s takes an argument that is a time: %s", name, doc)
		}
		require.GreaterOrEqual(t, documented, 10)
		all := strings.Join(mapValues(lua), "\n")
		// Arguments are never compared with, added to or taken from times.
		require.NotRegexp(t, `\bnow\s*[-+<>]=?\s*(tonumber\()?ARGV`, all)
		require.NotRegexp(t, `ARGV\[\d+\]\)?\s*[-+<>]=?\s*now\b`, all)
		require.NotRegexp(t, `'TIME'[^\n]*ARGV`, all)
	})

	t.Run("GoCodeThatRunsScriptsDoesNotReadTheLocalClock", func(t *testing.T) {
		t.Parallel()
		fset := token.NewFileSet()
		gofiles, err := filepath.Glob(filepath.Join(storeDir, "*.go"))
		require.NoError(t, err)
		checked := 0
		for _, f := range gofiles {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			file, err := parser.ParseFile(fset, f, nil, 0)
			require.NoError(t, err)
			for _, d := range file.Decls {
				fn, ok := d.(*ast.FuncDecl)
				if !ok || fn.Body == nil || !runsScript(fn.Body) {
					continue
				}
				checked++
				ast.Inspect(fn.Body, func(n ast.Node) bool {
					if sel, ok := n.(*ast.SelectorExpr); ok {
						if id, ok := sel.X.(*ast.Ident); ok && id.Name == "time" && (sel.Sel.Name == "Now" || sel.Sel.Name == "Since" || sel.Sel.Name == "Until") {
							t.Errorf("%s: %s runs a script and reads the local clock (time.%s)", fset.Position(sel.Pos()), fn.Name.Name, sel.Sel.Name)
						}
					}
					return true
				})
			}
		}
		require.GreaterOrEqual(t, checked, 12, "the functions that run scripts were found")
	})
}

// argvDoc returns a script's ARGV documentation: the header lines from
// "-- ARGV:" up to the next header field ("-- Reply:", "-- KEYS:") or the
// first line of code.
func argvDoc(src string) string {
	var b strings.Builder
	in := false
	for _, line := range strings.Split(src, "\n") {
		switch {
		case strings.HasPrefix(line, "-- ARGV:"):
			in = true
		case !in:
			continue
		case !strings.HasPrefix(line, "--"), strings.HasPrefix(line, "-- Reply:"), strings.HasPrefix(line, "-- KEYS:"):
			return b.String()
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// runsScript reports whether a function body runs a store script:
// s.run(...), or Run/EvalSha on a script (sc, sc.push, xxxScript).
func runsScript(body *ast.BlockStmt) bool {
	found := false
	ast.Inspect(body, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		switch sel.Sel.Name {
		case "run":
			found = true
		case "Run", "EvalSha":
			switch x := sel.X.(type) {
			case *ast.Ident:
				found = found || x.Name == "sc" || strings.HasSuffix(x.Name, "Script")
			case *ast.SelectorExpr:
				if inner, ok := x.X.(*ast.SelectorExpr); ok && inner.Sel.Name == "sc" {
					found = true // p.s.sc.push.Run
				}
			}
		}
		return true
	})
	return found
}
