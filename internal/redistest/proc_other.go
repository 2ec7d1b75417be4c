//go:build !linux

package redistest

import "syscall"

// sysProcAttr: only Linux has a parent-death signal; elsewhere t.Cleanup
// alone stops the servers.
func sysProcAttr() *syscall.SysProcAttr { return nil }
