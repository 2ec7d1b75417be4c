//go:build unix && !linux

package workercmd

import "syscall"

// procAttr starts a command in its own process group, so that a timeout or
// a stop kills every process it started, not only the first. There is no
// parent-death signal here: a worker killed with SIGKILL leaves its running
// commands to finish on their own.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
