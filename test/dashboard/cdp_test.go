package dashboard_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/testkit"
)

// browserTab drives one headless Chromium page over the DevTools protocol
// on a pipe (--remote-debugging-pipe: NUL-terminated JSON on fds 3 and 4),
// which needs nothing but the standard library. It is used from one
// goroutine.
type browserTab struct {
	t       *testing.T
	cmd     *exec.Cmd
	toB     *os.File
	fromB   *bufio.Reader
	nextID  int
	session string
	stderr  testkit.Buffer // Chromium's, for error messages
}

// openBrowser starts Chromium with a 1280x900 window and one blank page.
// The browser is closed when the test ends.
func openBrowser(t *testing.T, bin string) *browserTab {
	t.Helper()
	// Chromium reads commands on fd 3 and writes replies on fd 4.
	cmdR, cmdW, err := os.Pipe()
	require.NoError(t, err)
	resR, resW, err := os.Pipe()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	cmd := exec.CommandContext(ctx, bin, "--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
		"--remote-debugging-pipe", "--user-data-dir="+t.TempDir(), "--window-size=1280,900", "about:blank")
	cmd.ExtraFiles = []*os.File{cmdR, resW}
	b := &browserTab{t: t, cmd: cmd, toB: cmdW, fromB: bufio.NewReader(resR)}
	cmd.Stderr = &b.stderr
	require.NoError(t, cmd.Start())
	_ = cmdR.Close()
	_ = resW.Close()
	t.Cleanup(func() {
		_, _ = b.call("Browser.close", nil)
		_ = cmdW.Close()
		_ = cmd.Wait()
		cancel()
		_ = resR.Close()
	})

	var target struct {
		TargetID string `json:"targetId"`
	}
	b.must("Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	b.must("Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached)
	b.session = attached.SessionID
	b.must("Emulation.setDeviceMetricsOverride", map[string]any{"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}, nil)
	return b
}

type cdpMessage struct {
	ID     int             `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// call sends one command to the page's session (or the browser, before
// it has one) and reads until its reply, skipping events.
func (b *browserTab) call(method string, params any) (json.RawMessage, error) {
	b.nextID++
	msg := map[string]any{"id": b.nextID, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if b.session != "" && method != "Browser.close" {
		msg["sessionId"] = b.session
	}
	data, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	if _, err := b.toB.Write(append(data, 0)); err != nil {
		return nil, fmt.Errorf("send %s: %w", method, err)
	}
	for {
		raw, err := b.fromB.ReadBytes(0)
		if err != nil {
			return nil, fmt.Errorf("read reply to %s: %w", method, err)
		}
		var m cdpMessage
		if err := json.Unmarshal(raw[:len(raw)-1], &m); err != nil {
			return nil, fmt.Errorf("reply to %s: %w", method, err)
		}
		if m.ID != b.nextID {
			continue // an event, or a reply to nothing we wait for
		}
		if m.Error != nil {
			return nil, fmt.Errorf("%s: %s", method, m.Error.Message)
		}
		return m.Result, nil
	}
}

func (b *browserTab) must(method string, params, out any) {
	b.t.Helper()
	res, err := b.call(method, params)
	if err != nil {
		b.t.Fatalf("chromium: %v\n%s", err, b.stderr.Tail(4096))
	}
	if out != nil {
		require.NoError(b.t, json.Unmarshal(res, out))
	}
}

// navigate loads url and waits until the document has loaded.
func (b *browserTab) navigate(url string) {
	b.t.Helper()
	b.must("Page.navigate", map[string]any{"url": url}, nil)
	b.waitFor(`document.readyState === "complete" && location.href === ` + jsString(url))
}

// eval runs a JavaScript expression in the page and stores its JSON value
// in out.
func (b *browserTab) eval(expr string, out any) {
	b.t.Helper()
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	b.must("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &res)
	require.Nil(b.t, res.ExceptionDetails, "%s threw", expr)
	require.NoError(b.t, json.Unmarshal(res.Result.Value, out), "%s returned %s", expr, res.Result.Value)
}

// waitFor waits until a JavaScript condition holds in the page, asking
// again every 50ms for at most 30s.
func (b *browserTab) waitFor(cond string) {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var ok bool
		b.eval("!!("+cond+")", &ok)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("the page never reached %s", cond)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// screenshot saves the viewport (or the whole page) as a PNG at path.
func (b *browserTab) screenshot(path string, fullPage bool) {
	b.t.Helper()
	params := map[string]any{"format": "png"}
	if fullPage {
		var m struct {
			CSSContentSize struct{ Width, Height float64 } `json:"cssContentSize"`
		}
		b.must("Page.getLayoutMetrics", nil, &m)
		params["captureBeyondViewport"] = true
		params["clip"] = map[string]any{"x": 0, "y": 0, "width": m.CSSContentSize.Width, "height": m.CSSContentSize.Height, "scale": 1}
	}
	var shot struct {
		Data string `json:"data"`
	}
	b.must("Page.captureScreenshot", params, &shot)
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	require.NoError(b.t, err)
	require.NoError(b.t, os.WriteFile(path, png, 0o644))
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
