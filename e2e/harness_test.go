package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// requireServicesEnv names the environment variable that turns skips for missing tools
// into failures, for CI machines that must run everything.
const requireServicesEnv = "LIMITGEN_REQUIRE_SERVICES"

// chatBinEnv names the environment variable that points the tests at a prebuilt chat
// server instead of building examples/chat.
const chatBinEnv = "LIMITGEN_E2E_CHAT_BIN"

var (
	// binDir holds the binaries the tests build; TestMain removes it.
	binDir string

	buildsMu sync.Mutex
	builds   = map[string]*exampleBuild{}
)

// exampleBuild is the binary of one example, built once per test binary.
type exampleBuild struct {
	once sync.Once
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "limitgen-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// need skips t, or fails it when LIMITGEN_REQUIRE_SERVICES=1, unless ok.
func need(t *testing.T, ok bool, format string, args ...any) {
	t.Helper()
	if ok {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(requireServicesEnv) == "1" {
		t.Fatalf("%s (required because %s=1)", msg, requireServicesEnv)
	}
	t.Skip(msg)
}

// repoRoot is the repository root: the tests run in e2e/.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// requireNode skips (or fails) t unless node and the packages of the client directory
// e2e/CLIENT (client for socket.io-client 4.x, client-v2 for 2.x) are there.
func requireNode(t *testing.T, client string) {
	t.Helper()
	_, err := exec.LookPath("node")
	need(t, err == nil, "node not found on PATH; install Node.js 18 or later")
	mod := filepath.Join(repoRoot(t), "e2e", client, "node_modules", "socket.io-client")
	_, err = os.Stat(mod)
	need(t, err == nil, "%s missing; run: npm ci --prefix e2e/%s", mod, client)
}

// buildExample builds examples/NAME once per test binary and returns the binary's path.
// For the chat example, $LIMITGEN_E2E_CHAT_BIN may name a prebuilt server to test instead.
func buildExample(t *testing.T, name string) string {
	t.Helper()
	buildsMu.Lock()
	b := builds[name]
	if b == nil {
		b = &exampleBuild{}
		builds[name] = b
	}
	buildsMu.Unlock()

	b.once.Do(func() {
		if bin := os.Getenv(chatBinEnv); bin != "" && name == "chat" {
			b.bin = bin
			return
		}
		b.bin = filepath.Join(binDir, name)
		args := []string{"build", "-C", filepath.Join(repoRoot(t), "examples", name)}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "-o", b.bin, ".")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.bin
}

// startChat starts the chat example for a test that counts exact allowances; see
// startExample and countingArgs.
func startChat(t *testing.T, env ...string) string {
	t.Helper()
	return startExample(t, "chat", env, countingArgs(env)...)
}

// countingArgs are the server flags for tests that count exact allowances: with Redis, a
// deadline of 2s instead of 50ms. On a loaded CI machine a decision that missed the short
// deadline would be made in process and counted apart; the deadline itself is tested by
// the runtime's fault tests and by TestChatRedisAlternating.
func countingArgs(env []string) []string {
	if slices.ContainsFunc(env, func(v string) bool { return strings.HasPrefix(v, "REDIS_URL=") }) {
		return []string{"-timeout", "2s"}
	}
	return nil
}

// startExample starts examples/NAME on a free loopback port, with env added to the test's
// environment and args to its flags, and returns its base URL. Cleanup stops it with
// SIGTERM and fails the test if it does not exit cleanly or reported a data race.
func startExample(t *testing.T, name string, env []string, args ...string) string {
	t.Helper()
	bin := buildExample(t, name)
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()

	cmd := exec.Command(bin, append([]string{"-addr", "127.0.0.1:0", "-debug"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = logFile
	addrc := make(chan string, 1)
	cmd.Stdout = &addrWatcher{found: addrc}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s server: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { stopServer(t, name, cmd, exited, logPath) })

	select {
	case addr := <-addrc:
		return "http://" + addr
	case err := <-exited:
		exited <- err
		t.Fatalf("%s server exited before listening: %v; log:\n%s", name, err,
			readFile(logPath))
	case <-time.After(20 * time.Second):
		t.Fatalf("%s server did not print its address within 20s; log:\n%s", name,
			readFile(logPath))
	}
	return ""
}

// addrWatcher is the server's stdout: it sends the address of the first
// "listening on ADDR" line to found and discards everything.
type addrWatcher struct {
	buf   []byte
	found chan<- string
}

func (w *addrWatcher) Write(p []byte) (int, error) {
	if w.found == nil {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	for {
		line, rest, ok := strings.Cut(string(w.buf), "\n")
		if !ok {
			break
		}
		w.buf = []byte(rest)
		if addr, ok := strings.CutPrefix(line, "listening on "); ok {
			w.found <- strings.TrimSpace(addr)
			w.found, w.buf = nil, nil
			break
		}
	}
	return len(p), nil
}

// stopServer sends SIGTERM, waits (bounded) for a clean exit and checks the log for races.
func stopServer(t *testing.T, name string, cmd *exec.Cmd, exited <-chan error, logPath string) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("signal %s server: %v", name, err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("%s server did not exit cleanly on SIGTERM: %v; log:\n%s", name,
				err, readFile(logPath))
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-exited
		t.Errorf("%s server still running 10s after SIGTERM; killed it", name)
	}
	if log := readFile(logPath); strings.Contains(log, "DATA RACE") {
		t.Errorf("%s server reported a data race:\n%s", name, log)
	}
}

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	return string(b)
}

// Emit is one event a driven client sends.
type Emit struct {
	Event string `json:"event"`
	Data  any    `json:"data,omitempty"`
	Ack   bool   `json:"ack,omitempty"`
}

// Plan is what drive.js does; see e2e/client/drive.js.
type Plan struct {
	URL              string   `json:"url"`
	User             string   `json:"user,omitempty"`
	Transports       []string `json:"transports,omitempty"`
	Emits            []Emit   `json:"emits"`
	AckTimeoutMs     int      `json:"ackTimeoutMs,omitempty"`
	WaitFor          string   `json:"waitFor,omitempty"` // an event to wait for first
	WaitDisconnectMs int      `json:"waitDisconnectMs,omitempty"`
}

// Reply is the ack of one emitted event: Response, or Error when it timed out.
type Reply struct {
	Event    string         `json:"event"`
	Response map[string]any `json:"response"`
	Error    string         `json:"error"`
}

// OK reports whether the server answered {ok: true}.
func (r Reply) OK() bool { return r.Response["ok"] == true }

// Limited reports whether the server answered {ok: false, error: "rate_limited"}.
func (r Reply) Limited() bool {
	return r.Response["ok"] == false && r.Response["error"] == "rate_limited"
}

// RetryAfterMs is the answer's retryAfterMs, or -1 when it has none.
func (r Reply) RetryAfterMs() float64 {
	if v, ok := r.Response["retryAfterMs"].(float64); ok {
		return v
	}
	return -1
}

// Result is what drive.js printed.
type Result struct {
	ID               string  `json:"id"`
	Acks             []Reply `json:"acks"`
	DisconnectReason string  `json:"disconnectReason"`
}

// drive runs one socket.io-client 4.x client through plan against the chat example, which
// says "welcome" when it is ready for events, and returns what it got.
func drive(t *testing.T, plan Plan) Result {
	t.Helper()
	plan.WaitFor = "welcome"
	return driveWith(t, "client", plan)
}

// driveWith runs e2e/CLIENT/drive.js through plan and returns what it got.
func driveWith(t *testing.T, client string, plan Plan) Result {
	t.Helper()
	b, err := json.Marshal(plan)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	script := filepath.Join(repoRoot(t), "e2e", client, "drive.js")
	cmd := exec.CommandContext(ctx, "node", script, string(b))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node drive.js: %v\nstderr: %s", err, stderr.String())
	}
	var res Result
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("decode drive.js output %q: %v", out, err)
	}
	return res
}

// repeat returns n copies of e, numbering string data as "data 1", "data 2", ...
func repeat(n int, e Emit) []Emit {
	out := make([]Emit, n)
	for i := range out {
		out[i] = e
		if s, ok := e.Data.(string); ok {
			out[i].Data = fmt.Sprintf("%s %d", s, i+1)
		}
	}
	return out
}
