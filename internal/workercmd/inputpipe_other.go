//go:build !linux

package workercmd

import "os"

// maxPipeInput is the largest input a command gets through a pipe: what
// fits in an empty one without growing it.
const maxPipeInput = smallInput

// growPipe reports whether the pipe of w holds n bytes as it is.
func growPipe(_ *os.File, n int) bool { return n <= smallInput }
