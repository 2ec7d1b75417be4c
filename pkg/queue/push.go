package queue

import (
	"context"
	"fmt"

	"github.com/workq/workq/internal/store"
)

// Push defaults.
const (
	// DefaultChunkItems is how many items one script call appends.
	DefaultChunkItems = store.DefaultChunkItems
	// DefaultChunkBytes closes a chunk early once its items hold this many bytes.
	DefaultChunkBytes = store.DefaultChunkBytes
	// DefaultPipelineChunks is how many chunks one round trip carries.
	DefaultPipelineChunks = store.DefaultPipelineChunks
)

// PushOptions tune a Pusher. The zero value is the default.
type PushOptions struct {
	// Dedupe skips items whose bytes were pushed to this Job before.
	Dedupe bool
	// ChunkItems caps the items of one script call. Default 1000.
	ChunkItems int
	// PipelineChunks caps the chunks of one round trip. Default 8.
	PipelineChunks int
}

// Pusher streams items into a Job in pipelined chunks with bounded memory
// (at most two round trips of chunks are held), in order. It is bound to
// the Job's incarnation when it starts: a Job deleted and created again
// meanwhile refuses the rest (ErrReplaced). A Pusher is not safe for
// concurrent use; Close must be called.
type Pusher struct{ p *store.Pusher }

// NewPusher starts a Pusher for the Job's current incarnation. It returns
// ErrNoJob.
func (c *Client) NewPusher(ctx context.Context, job string, opts PushOptions) (*Pusher, error) {
	s, err := c.store(ctx)
	if err != nil {
		return nil, err
	}
	uid, err := s.UID(ctx, job)
	if err != nil {
		return nil, fmt.Errorf("push to %q: %w", job, err)
	}
	so := store.PushOptions{Dedupe: opts.Dedupe, ChunkItems: opts.ChunkItems, PipelineChunks: opts.PipelineChunks}
	return &Pusher{p: s.NewPusher(ctx, job, uid, so)}, nil
}

// Add queues one item; its bytes are copied. It returns the first error of
// an earlier round trip, after which nothing more is sent.
func (p *Pusher) Add(item []byte) error { return p.p.Add(item) }

// Written returns how many items Redis has confirmed so far.
func (p *Pusher) Written() int64 { return p.p.Written() }

// Err returns the first error of a round trip, if any.
func (p *Pusher) Err() error { return p.p.Err() }

// Close sends what is left, waits for every round trip, and returns the
// number of items appended (with Dedupe, repeats are not counted) and the
// first error. Items confirmed before an error stay in the Job.
func (p *Pusher) Close() (int64, error) { return p.p.Close() }

// Push appends items to a Job in order, pipelined. It returns how many were
// appended (items confirmed before an error stay in the Job), and ErrNoJob,
// ErrReplaced, ErrSealed, ErrFinished or ErrOutOfMemory.
func (c *Client) Push(ctx context.Context, job string, items [][]byte, opts PushOptions) (int64, error) {
	p, err := c.NewPusher(ctx, job, opts)
	if err != nil {
		return 0, err
	}
	for _, it := range items {
		if err := p.Add(it); err != nil {
			break
		}
	}
	return p.Close()
}
