package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Do sends one command to the server on a new connection and returns its
// reply: a string (simple or bulk), an int64, nil, or a []any of those. An
// error reply is returned as a ReplyError, such as "MOVED 3999 127.0.0.1:7001". It is for tests that look at one server
// directly, under a client's feet.
func (s *Server) Do(args ...string) (any, error) { return do(s.Addr, args...) }

// do runs one command on addr. No AUTH: the servers this package starts
// have no password unless a test gives one.
func do(addr string, args ...string) (any, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c, b.String()); err != nil {
		return nil, err
	}
	v, err := readReply(bufio.NewReader(c))
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", strings.ToUpper(args[0]), addr, err)
	}
	return v, nil
}

// doString runs a command whose reply is a string (INFO, CLUSTER INFO).
func doString(addr string, args ...string) (string, error) {
	v, err := do(addr, args...)
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s on %s: reply %v is not a string", strings.ToUpper(args[0]), addr, v)
	}
	return s, nil
}

// readReply reads one RESP2 reply. An error reply inside an array becomes
// an error element.
func readReply(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty reply line")
	}
	body := line[1:]
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return nil, ReplyError(body)
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		out := make([]any, n)
		for i := range out {
			v, err := readReply(r)
			var re ReplyError
			switch {
			case errors.As(err, &re):
				out[i] = re
			case err != nil:
				return nil, err
			default:
				out[i] = v
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown reply %q", line)
}

// ReplyError is an error reply of Redis, such as "CLUSTERDOWN ...".
type ReplyError string

func (e ReplyError) Error() string { return string(e) }

// infoField returns one "field:value" line of an INFO-style text.
func infoField(text, field string) string {
	for line := range strings.SplitSeq(text, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}
