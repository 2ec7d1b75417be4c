package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Push defaults.
const (
	// DefaultChunkItems is how many items one script call appends.
	DefaultChunkItems = 1000
	// DefaultChunkBytes closes a chunk early once its items hold this many bytes.
	DefaultChunkBytes = 1 << 20
	// DefaultPipelineChunks is how many chunks one round trip carries.
	DefaultPipelineChunks = 8
)

// PushOptions tune a Pusher. The zero value is the default.
type PushOptions struct {
	// Dedupe skips items whose bytes were pushed before to this Job.
	Dedupe bool
	// ChunkItems caps the items of one script call. Default 1000.
	ChunkItems int
	// PipelineChunks caps the chunks of one round trip. Default 8.
	PipelineChunks int
}

// Pusher streams items into a Job in pipelined chunks with bounded memory:
// at most two round trips of chunks are held at once. Items keep their
// order. Every chunk carries the Job's incarnation uid: a Job deleted and
// created again meanwhile refuses the rest (ErrReplaced). A Pusher is not
// safe for concurrent use.
type Pusher struct {
	s    *Store
	job  string
	uid  string
	opts PushOptions

	chunk   []any  // script args of the chunk being filled
	bytes   int    // item bytes in chunk
	id      string // this Pusher's random id, the prefix of its chunk ids
	seq     int    // chunks started
	arena   []byte
	batch   [][]any // chunks of the round trip being filled
	sends   chan [][]any
	wg      sync.WaitGroup
	mu      sync.Mutex
	written int64
	err     error
	closed  bool
	cancel  context.CancelFunc

	// shards, for a sharded Job: a Pusher per shard, dealt items in turn
	// (with Dedupe, by digest, so that a repeat meets its first copy).
	shards []*Pusher
	deal   int
}

// NewPusher starts a Pusher for incarnation uid of job ("" is whatever
// incarnation each chunk finds). Close must be called. For a sharded Job,
// it deals the items over the shards.
func (s *Store) NewPusher(ctx context.Context, job, uid string, opts PushOptions) *Pusher {
	if g, err := s.Group(ctx, job); err == nil && (uid == "" || uid == g.UID) {
		p := &Pusher{opts: opts, shards: make([]*Pusher, len(g.Shards))}
		for k, sh := range g.Shards {
			// Each shard's pusher is bound to the incarnation it finds
			// now; one unknown (ErrNoJob) is reported by its first chunk.
			suid, _ := s.UID(ctx, sh)
			p.shards[k] = s.newPusher(ctx, sh, suid, opts)
		}
		return p
	}
	return s.newPusher(ctx, job, uid, opts)
}

func (s *Store) newPusher(ctx context.Context, job, uid string, opts PushOptions) *Pusher {
	if opts.ChunkItems <= 0 {
		opts.ChunkItems = DefaultChunkItems
	}
	if opts.PipelineChunks <= 0 {
		opts.PipelineChunks = DefaultPipelineChunks
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &Pusher{s: s, job: job, uid: uid, opts: opts, sends: make(chan [][]any, 1), cancel: cancel, id: NewID()}
	p.reset()
	p.wg.Add(1)
	go p.sender(ctx)
	return p
}

func (p *Pusher) reset() {
	mode := "plain"
	if p.opts.Dedupe {
		mode = "dedupe"
	}
	n := p.opts.ChunkItems
	if p.opts.Dedupe {
		n *= 2
	}
	// Each chunk carries an id of its own, so that a chunk the Redis client
	// sends again after a broken connection is not appended twice.
	p.seq++
	p.chunk = make([]any, chunkHead, n+chunkHead)
	p.chunk[0], p.chunk[1], p.chunk[2] = p.uid, mode, fmt.Sprintf("%s-%d", p.id, p.seq)
	p.bytes = 0
	p.arena = make([]byte, 0, 64*1024)
}

// Add queues one item; the bytes are copied. It returns the first error of
// an earlier round trip, after which nothing more is sent.
func (p *Pusher) Add(item []byte) error {
	if p.shards != nil {
		return p.dealAdd(item)
	}
	if err := p.Err(); err != nil {
		return err
	}
	if p.opts.Dedupe {
		sum := sha256.Sum256(item)
		p.chunk = append(p.chunk, string(sum[:16]))
	}
	// Items are sliced out of a per-chunk arena; a full arena is replaced,
	// never grown, so earlier slices stay valid.
	if cap(p.arena)-len(p.arena) < len(item) {
		p.arena = make([]byte, 0, max(64*1024, len(item)))
	}
	start := len(p.arena)
	p.arena = append(p.arena, item...)
	p.chunk = append(p.chunk, p.arena[start:len(p.arena):len(p.arena)])
	p.bytes += len(item)
	items := len(p.chunk) - chunkHead
	if p.opts.Dedupe {
		items /= 2
	}
	// The arena is replaced when full, so its length is not the chunk's.
	if items >= p.opts.ChunkItems || p.bytes >= DefaultChunkBytes {
		p.endChunk()
	}
	return nil
}

func (p *Pusher) endChunk() {
	if len(p.chunk) > chunkHead {
		p.batch = append(p.batch, p.chunk)
		p.reset()
	}
	if len(p.batch) >= p.opts.PipelineChunks {
		p.sends <- p.batch
		p.batch = nil
	}
}

func (p *Pusher) sender(ctx context.Context) {
	defer p.wg.Done()
	sc := p.s.sc.push
	keys := sc.keysOf(p.s.keysOf(p.job))
	for batch := range p.sends {
		if p.Err() != nil {
			continue
		}
		if err := p.s.ready(ctx); err != nil {
			p.mu.Lock()
			if p.err == nil {
				p.err = fmt.Errorf("push to %q: %w", p.job, err)
			}
			p.mu.Unlock()
			continue
		}
		pipe := p.s.rdb().Pipeline()
		cmds := make([]*redis.Cmd, len(batch))
		for i, args := range batch {
			cmds[i] = sc.EvalSha(ctx, pipe, keys, args...)
		}
		_, err := pipe.Exec(ctx)
		// Every chunk is one script: each was appended whole or not at
		// all. Count every one that was (a chunk after a refused one may
		// still have gone in), and keep the first refusal.
		var n int64
		for _, cmd := range cmds {
			v, cerr := cmd.Int64()
			if cerr != nil {
				if err == nil || errors.Is(err, redis.Nil) {
					err = cerr
				}
				continue
			}
			n += v
		}
		if err != nil && isNoScript(err) {
			// A restarted Redis forgot the scripts: load and resend this
			// round trip. Each chunk is atomic, so nothing was half-applied.
			if lerr := p.s.LoadScripts(ctx); lerr == nil {
				n, err = p.resend(ctx, keys, batch, cmds)
			}
		}
		p.mu.Lock()
		p.written += n
		if err != nil && p.err == nil {
			p.err = fmt.Errorf("push to %q: %w", p.job, mapError(err))
		}
		p.mu.Unlock()
	}
}

// resend replays the chunks of a round trip that failed with NOSCRIPT,
// skipping those that succeeded.
func (p *Pusher) resend(ctx context.Context, keys []string, batch [][]any, prev []*redis.Cmd) (int64, error) {
	var n int64
	for i, args := range batch {
		if v, err := prev[i].Int64(); err == nil {
			n += v
			continue
		}
		v, err := p.s.sc.push.Run(ctx, p.s.rdb(), keys, args...).Int64()
		if err != nil {
			return n, err
		}
		n += v
	}
	return n, nil
}

// dealAdd gives item to the next shard in turn (with Dedupe, to the shard
// its digest picks).
func (p *Pusher) dealAdd(item []byte) error {
	if err := p.Err(); err != nil {
		return err
	}
	k := p.deal
	if p.opts.Dedupe {
		sum := sha256.Sum256(item)
		k = int(binary.BigEndian.Uint64(sum[:8]) % uint64(len(p.shards)))
	} else {
		p.deal = (p.deal + 1) % len(p.shards)
	}
	return p.shards[k].Add(item)
}

// Err returns the first error of a round trip, if any.
func (p *Pusher) Err() error {
	if p.shards != nil {
		for _, sh := range p.shards {
			if err := sh.Err(); err != nil {
				return err
			}
		}
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Written returns how many items Redis has confirmed so far.
func (p *Pusher) Written() int64 {
	if p.shards != nil {
		var n int64
		for _, sh := range p.shards {
			n += sh.Written()
		}
		return n
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.written
}

// Close sends what is left, waits for every round trip, and returns the
// number of items appended (with Dedupe, repeats are not counted) and the
// first error. Items confirmed before an error stay in the Job.
func (p *Pusher) Close() (int64, error) {
	if p.shards != nil {
		for _, sh := range p.shards {
			_, _ = sh.Close()
		}
		return p.Written(), p.Err()
	}
	if !p.closed {
		p.closed = true
		if len(p.chunk) > chunkHead {
			p.batch = append(p.batch, p.chunk)
		}
		if len(p.batch) > 0 {
			p.sends <- p.batch
			p.batch = nil
		}
		close(p.sends)
		p.wg.Wait()
		p.cancel()
	}
	return p.Written(), p.Err()
}

// Push appends items to a Job in order, pipelined. It returns how many were
// appended, and ErrNoJob, ErrReplaced, ErrSealed, ErrFinished or
// ErrOutOfMemory.
func (s *Store) Push(ctx context.Context, job, uid string, items [][]byte, opts PushOptions) (int64, error) {
	p := s.NewPusher(ctx, job, uid, opts)
	for _, it := range items {
		if err := p.Add(it); err != nil {
			break
		}
	}
	return p.Close()
}

// chunkHead is the number of script arguments before a chunk's items.
const chunkHead = 3
