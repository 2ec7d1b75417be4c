// Package store is workq's Redis store: the only package that speaks to
// Redis. It builds every key (keys.go), holds every state change as one
// embedded Lua script (lua/*.lua, each stating its KEYS, ARGV and reply at
// its top), decodes the scripts' replies into typed values, and maps their
// errors to the sentinels in errors.go.
//
// Every key of one Job shares the hash tag {JOB}, so a Job lives in one
// Redis Cluster slot and its scripts run there; only the registry of Job
// names (workq:jobs) lives elsewhere. The public API (pkg/queue), the
// controller and the tools are built on it.
package store
