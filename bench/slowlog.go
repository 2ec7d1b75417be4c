package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// slowEntry is one SLOWLOG entry of a workq command.
type slowEntry struct {
	Micros int64  `json:"micros"`
	What   string `json:"command"` // the script (by its keys) or the command and key
	Phase  string `json:"phase"`
	// Constant marks an O(1) command: how long it took is how long Redis
	// was off a CPU, not work.
	Constant bool   `json:"constant,omitempty"`
	kind     string // What without the Job's name
}

// slowKind sums up the SLOWLOG entries of one script or command: a cost
// that grows with a Job shows as many entries of like duration, a stall
// of the machine as a few scattered ones.
type slowKind struct {
	What   string  `json:"command"`
	Count  int     `json:"count"`
	Median float64 `json:"medianMs"`
	Max    float64 `json:"maxMs"`
}

// slowlog makes SLOWLOG record every command of threshold µs or more, up
// to maxLen entries, empties it, and returns what puts the settings back.
func (e *redisEnv) slowlog(ctx context.Context, threshold, maxLen int) (func(), error) {
	old, err := e.rdb.ConfigGet(ctx, "slowlog-*").Result()
	if err != nil {
		return nil, fmt.Errorf("config get slowlog-*: %w", err)
	}
	for k, v := range map[string]int{"slowlog-log-slower-than": threshold, "slowlog-max-len": maxLen} {
		if err := e.rdb.ConfigSet(ctx, k, strconv.Itoa(v)).Err(); err != nil {
			return nil, fmt.Errorf("config set %s: %w", k, err)
		}
	}
	if err := e.rdb.Do(ctx, "SLOWLOG", "RESET").Err(); err != nil {
		return nil, fmt.Errorf("slowlog reset: %w", err)
	}
	return func() {
		for k, v := range old {
			_ = e.rdb.ConfigSet(context.WithoutCancel(ctx), k, v).Err()
		}
	}, nil
}

// scriptKeys maps each workq script to the key names its KEYS header
// lists, read from internal/store/lua: a SLOWLOG entry of EVALSHA names
// its script only by hash, but its keys tell which one it was.
type scriptKeys map[string][]string

func loadScriptKeys(root string) (scriptKeys, error) {
	dir := filepath.Join(root, "internal", "store", "lua")
	files, err := filepath.Glob(filepath.Join(dir, "*.lua"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no Lua scripts in %s: %v", dir, err)
	}
	out := scriptKeys{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, l := range strings.Split(string(b), "\n") {
			if keys, ok := strings.CutPrefix(l, "-- KEYS:"); ok {
				out[strings.TrimSuffix(filepath.Base(f), ".lua")] = strings.Fields(keys)
				break
			}
		}
	}
	return out, nil
}

// name says which script an EVALSHA's arguments ran: every script whose
// KEYS are those given (SLOWLOG keeps at most 32 arguments). It returns
// the script and Job, and the script alone.
func (sk scriptKeys) name(args []string) (string, string) {
	if len(args) < 3 {
		return "EVALSHA", "EVALSHA"
	}
	nk, err := strconv.Atoi(args[2])
	if err != nil {
		return "EVALSHA", "EVALSHA"
	}
	var seen []string
	for _, a := range args[3:min(len(args), 3+nk)] {
		if strings.HasPrefix(a, "... (") {
			break
		}
		_, k, _ := strings.Cut(a, "}:")
		seen = append(seen, k)
	}
	var names []string
	for name, keys := range sk {
		if len(keys) == nk && len(seen) <= nk && slices.Equal(keys[:len(seen)], seen) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return "EVALSHA (an unknown script)", "EVALSHA (an unknown script)"
	}
	slices.Sort(names)
	job, which := "", ""
	if len(args) > 3 {
		job, _, _ = strings.Cut(strings.TrimPrefix(args[3], "workq:{"), "}")
		which = " (a small Job)"
		if job == bigJob {
			which = " (the giant Job)"
		}
	}
	script := "script " + strings.Join(names, " or ")
	return fmt.Sprintf("%s (job %s)", script, job), script + which
}

// readSlowlog fills the slowest workq commands.
func (b *bench) readSlowlog(ctx context.Context, res *scaleResult, sk scriptKeys, ph *phases) error {
	logs, err := b.env.rdb.SlowLogGet(ctx, -1).Result()
	if err != nil {
		return fmt.Errorf("slowlog get: %w", err)
	}
	var es []slowEntry
	for _, l := range logs {
		if constantTime(l.Args) && l.Duration.Microseconds() > res.StallMicros {
			res.StallMicros = l.Duration.Microseconds()
			res.Stall = strings.Join(l.Args[:min(len(l.Args), 3)], " ")
		}
		workq := false
		for _, a := range l.Args[1:] {
			workq = workq || strings.HasPrefix(a, "workq:")
		}
		if !workq {
			continue
		}
		what := strings.ToUpper(l.Args[0])
		var kind string
		if what == "EVALSHA" || what == "EVAL" {
			what, kind = sk.name(l.Args)
		} else {
			kind = what + " " + jobKey(l.Args[1])
			what += " " + strings.Join(l.Args[1:min(len(l.Args), 3)], " ")
		}
		es = append(es, slowEntry{Micros: l.Duration.Microseconds(), What: what, Phase: ph.at(l.Time.Unix()),
			Constant: constantTime(l.Args), kind: kind})
	}
	slices.SortFunc(es, func(a, b slowEntry) int { return int(b.Micros - a.Micros) })
	res.SlowCount = len(es)
	for _, e := range es {
		if e.Micros > 5000 {
			res.SlowOver5++
		}
	}
	res.SlowLost = len(logs) >= 100_000
	res.Slowest = es[:min(len(es), 10)]
	if i := slices.IndexFunc(es, func(e slowEntry) bool { return !e.Constant }); i >= 0 {
		res.SlowestWork = &es[i]
	}
	byKind := map[string][]float64{}
	for _, e := range es {
		byKind[e.kind] = append(byKind[e.kind], float64(e.Micros)/1000)
	}
	for k, ds := range byKind {
		st := summarize(ds)
		res.SlowKinds = append(res.SlowKinds, slowKind{What: k, Count: len(ds), Median: st.Median, Max: st.Max})
	}
	slices.SortFunc(res.SlowKinds, func(a, b slowKind) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return strings.Compare(a.What, b.What)
	})
	return nil
}

// jobKey is a workq key with its Job's name left out: workq:{…}:pending.
func jobKey(key string) string {
	i, j := strings.IndexByte(key, '{'), strings.IndexByte(key, '}')
	if i < 0 || j < i {
		return key
	}
	job := key[i+1 : j]
	which := "a small Job"
	if job == bigJob {
		which = "the giant Job"
	}
	return key[:i+1] + "…" + key[j:] + " (" + which + ")"
}

// constantTime reports whether a command does O(1) work: one that SLOWLOG
// records anyway took that long because Redis was not on a CPU (the
// machine was busy), not because of what it did.
func constantTime(args []string) bool {
	if len(args) == 0 {
		return false
	}
	switch strings.ToUpper(args[0]) {
	case "LLEN", "HGET", "ZSCORE", "EXISTS", "TIME", "HINCRBY", "INCR", "INCRBY", "GET", "ZCARD", "HLEN", "SCARD", "PING", "HSETNX":
		return true
	case "HSET", "HDEL":
		return len(args) <= 4
	case "HMGET":
		return len(args) <= 6
	}
	return false
}
