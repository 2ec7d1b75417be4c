package testkit

import (
	"sync"
	"testing"
	"time"
)

// Eventually asks cond every 20ms until it returns true, or until timeout
// has passed; then it fails the test with what, and what cond last said.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	Poll(t, 20*time.Millisecond, timeout, what, cond)
}

// Poll is Eventually asking every interval, for conditions that are
// expensive to ask (a command in a container).
func Poll(t testing.TB, every, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %s", what, timeout, detail)
		}
		<-tick.C
	}
}

// Repeat calls fn at once and then every interval, on a goroutine of its
// own, until stop is called or the test ends. stop returns once fn has
// returned for the last time; calling it again does nothing.
func Repeat(t testing.TB, interval time.Duration, fn func()) (stop func()) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			fn()
			select {
			case <-quit:
				return
			case <-tick.C:
			}
		}
	})
	stop = sync.OnceFunc(func() {
		close(quit)
		wg.Wait()
	})
	t.Cleanup(stop)
	return stop
}
