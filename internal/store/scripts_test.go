package store

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A script carries the library definitions it uses, through others too,
// and no other: each one costs every call.
func TestAScriptCarriesTheDefinitionsItUses(t *testing.T) {
	lib := parseLib(`-- a comment before the first definition
local function a() return 1 end
local function b() return a() end
local C = {}
local function d() return 2 end
local function e9() return C end
`)
	require.Equal(t, "local function a() return 1 end\nlocal function b() return a() end\n", lib.shake("return b()"))
	require.Equal(t, "local C = {}\nlocal function e9() return C end\n", lib.shake("local x = e9()"))
	require.Equal(t, "local function d() return 2 end\n", lib.shake("-- d\n"),
		"a name in a comment counts too: a definition too many costs a closure, one too few breaks the script")
	require.Empty(t, lib.shake("return aa() + d2()"), "whole names only")
}

// Every process builds the scripts once, at its first Store: a CLI call
// and a worker's start pay it.
func BenchmarkLoadScripts(b *testing.B) {
	for b.Loop() {
		sc, err := loadScripts()
		if err != nil {
			b.Fatal(err)
		}
		if !strings.Contains(sc.lease.name, "lease") {
			b.Fatal("no lease script")
		}
	}
}
