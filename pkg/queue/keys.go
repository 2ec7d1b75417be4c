package queue

// Every Redis key of workq is built here. All keys of one Job share the hash
// tag {JOB}, so a Job lives in one Redis Cluster slot and its scripts run
// there. The scripts derive per-lease keys ("<leases>:<token>"), the hash
// of recent push chunk ids ("workq:{JOB}:chunks") and the events channel
// from the keys below, so they stay in the same slot.

const (
	// keyPrefix starts every key and channel of workq.
	keyPrefix = "workq:"
	// jobsKey is the set of Job names, for `coordinator list`. It lives
	// outside every Job's slot and is kept by Create and Delete.
	jobsKey = keyPrefix + "jobs"
)

// jobKeys are the keys of one Job, in the order every script takes them.
type jobKeys struct {
	spec     string // hash: the Job spec
	state    string // hash: flags, counters, conditions
	pending  string // list: raw item bytes, FIFO (RPUSH to load)
	leases   string // zset: lease token -> expiry (ms, server clock)
	retry    string // zset: "id:attempts:payload" -> ready time (ms)
	dead     string // hash: id -> "attempts:errlen:error" .. payload
	dedupe   string // set: item digests pushed with --dedupe
	indexes  string // bitmap: completed indexes of an Indexed Job
	workers  string // zset: worker id -> heartbeat deadline (ms)
	winfo    string // hash: worker id -> JSON WorkerInfo
	wended   string // hash: worker id -> how it ended
	rate     string // hash: unix second -> items succeeded in it
	pushlog  string // zset: list position after a push -> "pos:ms"
	events   string // pub/sub channel: wake-ups for waiting workers
	leaseKey string // prefix of the per-lease hashes: id -> "attempts:payload"
}

func keysFor(job string) jobKeys {
	p := keyPrefix + "{" + job + "}:"
	return jobKeys{
		spec:     p + "spec",
		state:    p + "state",
		pending:  p + "pending",
		leases:   p + "leases",
		retry:    p + "retry",
		dead:     p + "dead",
		dedupe:   p + "dedupe",
		indexes:  p + "indexes",
		workers:  p + "workers",
		winfo:    p + "winfo",
		wended:   p + "wended",
		rate:     p + "rate",
		pushlog:  p + "pushlog",
		events:   p + "events",
		leaseKey: p + "leases:",
	}
}

// all returns the keys in the order of the KEYS table of every script.
func (k jobKeys) all() []string {
	return []string{k.spec, k.state, k.pending, k.leases, k.retry, k.dead, k.dedupe,
		k.indexes, k.workers, k.winfo, k.wended, k.rate, k.pushlog}
}

// PendingKey is the list that holds a Job's pending items as raw bytes. Any
// Redis client can load a Job with `RPUSH workq:{JOB}:pending item...`,
// as long as the Job exists and is not sealed.
func PendingKey(job string) string { return keysFor(job).pending }
