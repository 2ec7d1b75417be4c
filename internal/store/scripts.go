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
	src, err := luaFiles.ReadFile("lua/lib.lua")
	if err != nil {
		return nil, err
	}
	lib := parseLib(string(src))
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
		sc, err := buildScript(f.name, string(body), lib)
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
func buildScript(name, body string, lib *library) (*script, error) {
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
	b.WriteString(lib.shake(body))
	b.WriteString("\n")
	b.WriteString(body)
	sc.Script = redis.NewScript(b.String())
	return sc, nil
}

// libDef matches the first line of a definition in lib.lua.
var libDef = regexp.MustCompile(`^local (?:function )?([A-Za-z_][A-Za-z0-9_]*)`)

// library is lib.lua cut into its definitions, each with the names it
// uses: cut once per process, for every script.
type library struct {
	defs   []libDefinition
	byName map[string]int
}

type libDefinition struct {
	text string
	uses []int // the definitions its text names
}

// parseLib cuts lib into its definitions.
func parseLib(lib string) *library {
	l := &library{byName: map[string]int{}}
	var names []string
	var text []strings.Builder
	for _, line := range strings.SplitAfter(lib, "\n") {
		if m := libDef.FindStringSubmatch(line); m != nil {
			names = append(names, m[1])
			text = append(text, strings.Builder{})
		}
		if len(text) == 0 {
			continue // comments before the first definition
		}
		text[len(text)-1].WriteString(line)
	}
	for i, n := range names {
		l.byName[n] = i
	}
	l.defs = make([]libDefinition, len(names))
	for i := range names {
		l.defs[i].text = text[i].String()
		l.defs[i].uses = l.named(l.defs[i].text)
	}
	return l
}

// named returns the definitions text names: its names (runs of letters,
// digits and _ that do not start with a digit) that are definitions.
func (l *library) named(text string) []int {
	var out []int
	word := func(c byte) bool {
		return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
	}
	for i := 0; i < len(text); {
		if !word(text[i]) {
			i++
			continue
		}
		j := i
		for j < len(text) && word(text[j]) {
			j++
		}
		for i < j && text[i] <= '9' { // a digit starts no name
			i++
		}
		if d, ok := l.byName[text[i:j]]; ok && i < j {
			out = append(out, d)
		}
		i = j
	}
	return out
}

// shake returns the definitions that body uses, directly or through other
// definitions, in lib's order. Every definition costs each call (a closure
// made per run), so a script carries only its own.
func (l *library) shake(body string) string {
	need := make([]bool, len(l.defs))
	var visit func(uses []int)
	visit = func(uses []int) {
		for _, i := range uses {
			if !need[i] {
				need[i] = true
				visit(l.defs[i].uses)
			}
		}
	}
	visit(l.named(body))
	var b strings.Builder
	for i, d := range l.defs {
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
