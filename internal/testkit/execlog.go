package testkit

import (
	"bufio"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Executions counts how often each item ran, from the files in dir whose
// names start with prefix, where item commands append one line per run.
// item returns the item that a complete line of a file (its base name)
// records, or false to pass the line over; nil counts each line as the
// item itself. A last line without '\n' was cut short by a kill and is
// not counted. It fails the test when a file cannot be read.
func Executions(t testing.TB, dir, prefix string, item func(file, line string) (string, bool)) map[string]int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("executions: %v", err)
	}
	counts := map[string]int{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		if err := countFile(filepath.Join(dir, e.Name()), counts, item); err != nil {
			t.Fatalf("executions: %v", err)
		}
	}
	return counts
}

func countFile(path string, counts map[string]int, item func(file, line string) (string, bool)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	name := filepath.Base(path)
	r := bufio.NewReaderSize(f, 256*1024)
	for {
		line, err := r.ReadString('\n')
		if errors.Is(err, io.EOF) {
			return nil // a last line without '\n' is incomplete
		}
		if err != nil {
			return err
		}
		line = line[:len(line)-1]
		it, ok := line, true
		if item != nil {
			it, ok = item(name, line)
		}
		if ok {
			counts[it]++
		}
	}
}
