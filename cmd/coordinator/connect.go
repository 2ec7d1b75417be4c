package main

import (
	"github.com/workq/workq/internal/cli"
	"github.com/workq/workq/pkg/queue"
)

// queueConnect returns a client that waits for Redis on each call, for
// long-running commands that must outlive a Redis restart.
func queueConnect(o queue.Options) (*queue.Client, error) {
	c, err := queue.Connect(o)
	if err != nil {
		return nil, cli.UsageError{Err: err}
	}
	return c, nil
}

func redactedURL(u string) string { return queue.RedactURL(u) }
