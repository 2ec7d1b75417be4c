//go:build unix && !linux

package main

import "syscall"

// workerProcAttr gives a worker its own process group: a Ctrl-C reaches
// run, which stops the workers gracefully, instead of every process at
// once. There is no parent-death signal here: if run itself is killed, its
// workers run on until the Job is drained.
func workerProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
