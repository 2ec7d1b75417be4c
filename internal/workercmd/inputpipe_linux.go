package workercmd

import (
	"os"

	"golang.org/x/sys/unix"
)

// maxPipeInput is the largest input a command gets through a pipe. Linux
// grows a pipe to hold it (up to fs.pipe-max-size, 1 MiB unless changed),
// which costs less than a temporary file; larger inputs, or a pipe that
// cannot grow, go through a file.
const maxPipeInput = 1 << 20

// growPipe makes the pipe of its write end w hold n bytes, so that writing
// them cannot block; false when it cannot.
func growPipe(w *os.File, n int) bool {
	if n <= smallInput {
		return true
	}
	raw, err := w.SyscallConn()
	if err != nil {
		return false
	}
	var got int
	var ferr error
	if err := raw.Control(func(fd uintptr) { got, ferr = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, n) }); err != nil {
		return false
	}
	return ferr == nil && got >= n
}
