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

// TestLeaseTimeIsTheServers proves by inspection what scenario 7 of the
// fault suite shows by running: every time a script compares comes from
// the Redis server (TIME), never from a worker. It fails when a script
// stops reading TIME, when a script is documented to take a time argument,
// or when Go code that runs a script reads the local clock.
func TestLeaseTimeIsTheServers(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("..", "..", "pkg", "queue")
	src, err := os.ReadFile(filepath.Join(dir, "scripts.go"))
	require.NoError(t, err)
	lua := string(src)

	t.Run("ScriptsReadTheServerClock", func(t *testing.T) {
		require.Equal(t, 1, strings.Count(lua, "redis.call('TIME')"), "one now_ms() reads TIME")
		for _, s := range []string{"leaseScript", "settleScript", "heartbeatScript", "reapScript", "transitionScript", "pushScript"} {
			body := scriptBody(t, lua, s)
			require.Contains(t, body, "now_ms()", "%s takes its time from TIME", s)
		}
	})

	t.Run("NoScriptTakesAClientTime", func(t *testing.T) {
		argv := regexp.MustCompile(`(?m)^//.*ARGV(\[\d+\]|:).*$`)
		lines := argv.FindAllString(lua, -1)
		require.GreaterOrEqual(t, len(lines), 8, "the ARGV documentation lines were found")
		for _, line := range lines {
			l := strings.ToLower(line)
			for _, bad := range []string{"time", "now", "clock", "deadline", "expir"} {
				require.NotContains(t, l, bad, "a script argument that is a time: %s", line)
			}
		}
		// ARGV values are never compared with times inside the scripts.
		require.NotRegexp(t, `now\s*[<>]=?\s*(tonumber\()?ARGV`, lua)
		require.NotRegexp(t, `ARGV\[\d+\]\)?\s*[<>]=?\s*now`, lua)
	})

	t.Run("GoCodeThatRunsScriptsDoesNotReadTheLocalClock", func(t *testing.T) {
		fset := token.NewFileSet()
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		require.NoError(t, err)
		checked := 0
		for _, f := range files {
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
		require.GreaterOrEqual(t, checked, 10, "the functions that run scripts were found")
	})
}

// scriptBody returns the Lua of one script variable in scripts.go.
func scriptBody(t *testing.T, src, name string) string {
	t.Helper()
	i := strings.Index(src, "var "+name+" = redis.NewScript(")
	require.GreaterOrEqual(t, i, 0, "script %s", name)
	j := strings.Index(src[i:], "\n`)")
	require.Greater(t, j, 0)
	return src[i : i+j]
}

// runsScript reports whether a function body runs a workq script: c.run(...)
// or xxxScript.Run/EvalSha(...).
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
			if id, ok := sel.X.(*ast.Ident); ok && strings.HasSuffix(id.Name, "Script") {
				found = true
			}
		}
		return true
	})
	return found
}
