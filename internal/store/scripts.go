package store

import (
	"embed"
	"fmt"
	"regexp"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/workq/workq/pkg/jobstate"
)

//go:embed lua/*.lua
var luaFiles embed.FS

// script is one state change: an embedded Lua file whose header names the
// keys it touches (`-- KEYS: spec state ...`). Its KEYS are exactly those,
// in that order, so a Cluster knows every key a script uses.
type script struct {
	name string
	keys []int // indexes into Keys
	*redis.Script
}

// scripts are every script of the store, by file name.
type scripts struct {
	create, push, register, lease, settle, heartbeat, finish, reap,
	snapshot, transition, seal, suspend, retryDead, deleteJob, group *script
	all []*script
}

func loadScripts() (*scripts, error) {
	lib, err := luaFiles.ReadFile("lua/lib.lua")
	if err != nil {
		return nil, err
	}
	s := &scripts{}
	for _, f := range []struct {
		name string
		dst  **script
	}{
		{"create", &s.create}, {"push", &s.push}, {"register", &s.register}, {"lease", &s.lease},
		{"settle", &s.settle}, {"heartbeat", &s.heartbeat}, {"finish", &s.finish}, {"reap", &s.reap},
		{"snapshot", &s.snapshot}, {"transition", &s.transition}, {"seal", &s.seal}, {"suspend", &s.suspend},
		{"retrydead", &s.retryDead}, {"delete", &s.deleteJob}, {"group", &s.group},
	} {
		body, err := luaFiles.ReadFile("lua/" + f.name + ".lua")
		if err != nil {
			return nil, err
		}
		sc, err := buildScript(f.name, string(body), string(lib))
		if err != nil {
			return nil, err
		}
		*f.dst = sc
		s.all = append(s.all, sc)
	}
	return s, nil
}

// buildScript puts together a script's source: a local per key name (from
// KEYS when the header declares it, else nil), the phase and guard names of
// pkg/jobstate, the shared library, then the body.
func buildScript(name, body, lib string) (*script, error) {
	var declared []string
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, "-- KEYS:"); ok {
			declared = strings.Fields(rest)
			break
		}
	}
	if declared == nil {
		return nil, fmt.Errorf("store: script %s has no `-- KEYS:` header", name)
	}
	sc := &script{name: name}
	pos := map[string]int{}
	for i, k := range declared {
		idx, ok := keyIndex[k]
		if !ok {
			return nil, fmt.Errorf("store: script %s declares unknown key %q", name, k)
		}
		sc.keys = append(sc.keys, idx)
		pos[k] = i + 1
	}
	var b strings.Builder
	for _, k := range keyNames {
		if i, ok := pos[k]; ok {
			fmt.Fprintf(&b, "local %s = KEYS[%d]\n", strings.ToUpper(k), i)
		} else {
			fmt.Fprintf(&b, "local %s = nil\n", strings.ToUpper(k))
		}
	}
	b.WriteString(luaConstants())
	b.WriteString(shake(lib, body))
	b.WriteString("\n")
	b.WriteString(body)
	sc.Script = redis.NewScript(b.String())
	return sc, nil
}

// libDef matches the first line of a definition in lib.lua.
var libDef = regexp.MustCompile(`^local (?:function )?([A-Za-z_][A-Za-z0-9_]*)`)

var luaIdent = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*`)

// shake returns the definitions of lib that body uses, directly or
// through other definitions, in lib's order. Every definition costs each
// call (a closure made per run), so a script carries only its own.
func shake(lib, body string) string {
	type def struct {
		name string
		text string
	}
	var defs []def
	var cur *def
	var pre strings.Builder // comments before the first definition
	for _, line := range strings.SplitAfter(lib, "\n") {
		if m := libDef.FindStringSubmatch(line); m != nil {
			defs = append(defs, def{name: m[1]})
			cur = &defs[len(defs)-1]
		}
		if cur == nil {
			pre.WriteString(line)
			continue
		}
		cur.text += line
	}
	byName := map[string]int{}
	for i, d := range defs {
		byName[d.name] = i
	}
	need := map[int]bool{}
	var visit func(text string)
	visit = func(text string) {
		for _, id := range luaIdent.FindAllString(text, -1) {
			if i, ok := byName[id]; ok && !need[i] {
				need[i] = true
				visit(defs[i].text)
			}
		}
	}
	visit(body)
	var b strings.Builder
	for i, d := range defs {
		if need[i] {
			b.WriteString(d.text)
		}
	}
	return b.String()
}

// luaConstants are the Lua names of jobstate's stored phases (PH_FAILING,
// ...) and guards (GUARD_BACKOFF_LIMIT, ...): the scripts compare against
// these, never against literals of their own.
func luaConstants() string {
	var b strings.Builder
	up := func(s string) string { return strings.ToUpper(strings.ReplaceAll(s, "-", "_")) }
	for _, p := range jobstate.StoredPhases {
		fmt.Fprintf(&b, "local PH_%s = %q\n", up(string(p)), p)
	}
	for _, g := range jobstate.Guards {
		fmt.Fprintf(&b, "local GUARD_%s = %q\n", up(string(g)), g)
	}
	return b.String()
}

// keysOf returns the script's KEYS for Job keys k.
func (s *script) keysOf(k Keys) []string {
	out := make([]string, len(s.keys))
	for i, idx := range s.keys {
		out[i] = k[idx]
	}
	return out
}
