package store

// Every Redis key of workq is built here. All keys of one Job share the hash
// tag {JOB}, so a Job lives in one Redis Cluster slot and its scripts run
// there.

const (
	// Prefix starts every key and channel of workq.
	Prefix = "workq:"
	// RegistryKey is the hash of Job names to their incarnation uid, for
	// `coordinator list` and the controller. It lives outside every Job's
	// slot: a name is added after its Job exists and dropped after it is
	// gone, so no name ever stands for a Job that was not created.
	RegistryKey = Prefix + "jobs"
	// GroupsKey is the hash of sharded Job names to their uid (see
	// Spec.Shards); their shards are Jobs of RegistryKey like any other.
	GroupsKey = Prefix + "groups"
)

// keyNames are the names the scripts use for a Job's keys, in KEYS headers
// and as Lua locals (upper-cased).
var keyNames = []string{
	"spec",     // hash: uid, the spec as JSON, and its fields the scripts read
	"state",    // hash: flags, counters, conditions, request ids
	"pending",  // list: raw item bytes, FIFO (RPUSH to load)
	"returned", // list: "id:attempts:payload" handed back unstarted; leased first
	"leases",   // zset: lease token -> expiry (ms, server clock)
	"batches",  // hash: lease token -> lease record (the batch's items)
	"bstart",   // hash: lease token -> "started:ms" (items of it that started, since when)
	"backup",   // hash: speculative copies: primary token -> "p:backup", backup token -> "b:primary"
	"retry",    // zset: "id:attempts:payload" -> when it may run again (ms)
	"dead",     // zset: "id:attempts:errlen:error..payload" -> id
	"dedupe",   // set: digests of items pushed with --dedupe
	"doneidx",  // zset: "a-b" ranges of succeeded indexes -> a
	"workers",  // zset: worker id -> heartbeat deadline (ms)
	"winfo",    // hash: worker id -> JSON WorkerInfo
	"wended",   // hash: worker id -> how it ended
	"rate",     // hash: unix second -> items succeeded in it
	"pushlog",  // zset: list position after a push -> "pos:ms"
	"chunks",   // hash: push chunk id -> items it appended (expires)
	"reqs",     // hash: per worker session, its last lease seq and settle reply
	"lost",     // zset: lease tokens taken over -> when (kept 10 minutes)
	"results",  // stream: item results (worker --results)
	"events",   // pub/sub channel: wake-ups for waiting workers
	"group",    // hash: a sharded Job's record (uid, shards, spec as JSON); no Job of the name exists
}

// Keys are the keys of one Job, in keyNames order.
type Keys []string

// KeysFor returns the keys of Job job.
func KeysFor(job string) Keys {
	p := Prefix + "{" + job + "}:"
	k := make(Keys, len(keyNames))
	for i, n := range keyNames {
		k[i] = p + n
	}
	return k
}

// keyIndex is the position of each key name in Keys.
var keyIndex = func() map[string]int {
	m := make(map[string]int, len(keyNames))
	for i, n := range keyNames {
		m[n] = i
	}
	return m
}()

// Key returns the key called name (one of keyNames).
func (k Keys) Key(name string) string {
	i, ok := keyIndex[name]
	if !ok {
		panic("store: no key named " + name)
	}
	return k[i]
}

// PendingKey is the list that holds a Job's pending items as raw bytes. Any
// Redis client can load a Job with `RPUSH workq:{JOB}:pending item...`, as
// long as the Job exists and is not sealed.
func PendingKey(job string) string { return KeysFor(job).Key("pending") }
