package main

import "syscall"

// workerProcAttr gives a worker its own process group: a Ctrl-C reaches
// run, which stops the workers gracefully, instead of every process at
// once. If run itself dies, its workers are told to stop (SIGTERM).
func workerProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
