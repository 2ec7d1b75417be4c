package workercmd

import "syscall"

// procAttr starts a command in its own process group, so that a timeout or
// a stop kills every process it started, not only the first. Pdeathsig: a
// worker killed with SIGKILL takes its running commands with it, instead of
// leaving them to run an item that is retried.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
