package runtime

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/limitgen/limitgen/internal/redistest"
)

// The multi-process test: workerProcs copies of this test binary, each running
// TestHammerWorker with workerGoroutines goroutines, hammer one identity through one
// Redis.
const (
	workerEnv        = "LIMITGEN_HAMMER_WORKER" // the worker's result file
	workerNoCacheEnv = "LIMITGEN_HAMMER_NOCACHE"
	workerProcs      = 4
	workerGoroutines = 16
	hammerFor        = 2 * time.Second
)

var (
	// hammerRule has short windows, so that the hammering spans several.
	hammerRule = Rule{Pool: "procs-fixed", Window: 500 * time.Millisecond, Allowance: 25}
	// burstRules have windows longer than the test: each allows its allowance in total.
	burstRules = []Rule{
		{Pool: "procs-sliding", Window: time.Minute, Allowance: 40, Algorithm: SlidingWindow},
		{Pool: "procs-gcra", Window: time.Minute, Allowance: 40, Algorithm: GCRA},
		{Pool: "procs-fixed-long", Window: time.Minute, Allowance: 40},
	}
)

// allowed is one allowed call: when its window ends in Unix ms, as seen by the worker
// (the time the call began plus ResetAfter; the call reached Redis a little later), and
// what Redis said remained.
type allowed struct{ End, Remaining int64 }

// workerResult is what one worker process saw.
type workerResult struct {
	Start, Stop int64     // when the hammering began and ended, in Unix ms
	Allowed     []allowed // the allowed calls of hammerRule
	Burst       []int     // for each of burstRules, the calls allowed
	Calls       int
	NotStore    int // decisions not made by Redis
	StoreErrors uint64
}

// TestHammerWorker is one worker process of TestProcessesShareOneLimit; it does nothing
// in a normal test run.
func TestHammerWorker(t *testing.T) {
	out := os.Getenv(workerEnv)
	if out == "" {
		t.Skip("a worker of TestProcessesShareOneLimit")
	}
	// 64 goroutines in 4 race-detector processes on a small CI machine may keep a call
	// waiting longer than the default deadline; a call decided locally would not be
	// Redis's count. This test is about counting, so its deadline is generous.
	opts := []Option{WithLogger(slog.New(slog.DiscardHandler)), WithTimeout(5 * time.Second)}
	if os.Getenv(workerNoCacheEnv) == "1" {
		opts = append(opts, WithDenialCache(0)) // every call goes to Redis
	}
	lim, err := FromEnv(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer lim.Close()
	fmt.Println("ready")
	if _, err := os.Stdin.Read(make([]byte, 1)); err != nil {
		t.Fatalf("waiting for the start: %v", err)
	}

	var mu sync.Mutex
	res := workerResult{Start: time.Now().UnixMilli(), Burst: make([]int, len(burstRules))}
	stop := time.Now().Add(hammerFor)
	var wg sync.WaitGroup
	for range workerGoroutines {
		wg.Go(func() {
			var got []allowed
			calls, notStore := 0, 0
			for {
				began := time.Now()
				if !began.Before(stop) {
					break
				}
				d := lim.Allow(&hammerRule, "one")
				calls++
				if d.Source != SourceStore {
					notStore++
				}
				if d.Allowed {
					got = append(got, allowed{began.UnixMilli() + d.ResetAfter.Milliseconds(),
						d.Remaining})
				}
			}
			mu.Lock()
			defer mu.Unlock()
			res.Allowed = append(res.Allowed, got...)
			res.Calls += calls
			res.NotStore += notStore
		})
	}
	wg.Wait()
	res.Stop = time.Now().UnixMilli()
	for i := range burstRules {
		for range workerGoroutines {
			wg.Go(func() {
				for range 10 {
					d := lim.Allow(&burstRules[i], "one")
					mu.Lock()
					if d.Allowed {
						res.Burst[i]++
					}
					if d.Source != SourceStore {
						res.NotStore++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	res.StoreErrors = lim.Stats().StoreErrors
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestProcessesShareOneLimit runs 4 processes of 16 goroutines each, hammering one
// identity through one real Redis, started together: in every window that lies wholly
// within the hammering, exactly the allowance is allowed in total, and for rules whose
// window outlasts the test, exactly their allowance.
func TestProcessesShareOneLimit(t *testing.T) {
	if os.Getenv(workerEnv) != "" {
		t.Skip("in a worker")
	}
	server := redistest.Start(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	type worker struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   string
		log   *os.File
	}
	var workers []*worker
	for i := range workerProcs {
		w := &worker{out: filepath.Join(dir, fmt.Sprintf("worker%d.json", i))}
		w.log, err = os.Create(filepath.Join(dir, fmt.Sprintf("worker%d.log", i)))
		if err != nil {
			t.Fatal(err)
		}
		w.cmd = exec.Command(exe, "-test.run=^TestHammerWorker$", "-test.count=1")
		// Half the workers replay denials in process (the default), half ask Redis for
		// every call.
		w.cmd.Env = append(os.Environ(), workerEnv+"="+w.out, "REDIS_URL="+server.URL(),
			fmt.Sprintf("%s=%d", workerNoCacheEnv, i%2))
		w.cmd.Stderr = w.log
		if w.stdin, err = w.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		stdout, err := w.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := w.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.cmd.Process.Kill(); w.cmd.Wait() })
		ready := make(chan error, 1)
		go func() {
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if err == nil && line != "ready\n" {
				err = fmt.Errorf("worker said %q", line)
			}
			ready <- err
			io.Copy(w.log, stdout)
		}()
		select {
		case err := <-ready:
			if err != nil {
				t.Fatalf("worker %d: %v", i, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("worker %d not ready within 30s", i)
		}
		workers = append(workers, w)
	}
	for _, w := range workers {
		w.stdin.Write([]byte{'\n'})
	}

	var all workerResult
	all.Start, all.Stop = 0, 1<<62
	all.Burst = make([]int, len(burstRules))
	for i, w := range workers {
		done := make(chan error, 1)
		go func() { done <- w.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				log, _ := os.ReadFile(w.log.Name())
				t.Fatalf("worker %d: %v\n%s", i, err, log)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("worker %d still running after 60s", i)
		}
		b, err := os.ReadFile(w.out)
		if err != nil {
			t.Fatal(err)
		}
		var r workerResult
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		all.Start, all.Stop = max(all.Start, r.Start), min(all.Stop, r.Stop)
		all.Allowed = append(all.Allowed, r.Allowed...)
		all.Calls += r.Calls
		all.NotStore += r.NotStore
		all.StoreErrors += r.StoreErrors
		for j, n := range r.Burst {
			all.Burst[j] += n
		}
	}
	if all.NotStore != 0 || all.StoreErrors != 0 {
		t.Fatalf("%d decisions not made by Redis, %d store errors: the counts below are "+
			"not Redis's", all.NotStore, all.StoreErrors)
	}

	// Group the allowed calls by the end of their window: the ends the workers computed
	// for one window are early by the time their call took to reach Redis (ms, unless a
	// process stalls), windows are 500ms apart. In a window, each allowed call must have
	// been told a different Remaining: 24, 23, ... 0.
	slices.SortFunc(all.Allowed, func(a, b allowed) int { return int(a.End - b.End) })
	type window struct {
		end       int64
		remaining []int64
	}
	w := hammerRule.Window.Milliseconds()
	var windows []*window
	for _, a := range all.Allowed {
		if n := len(windows); n == 0 || a.End-windows[n-1].end >= w/2 {
			windows = append(windows, &window{end: a.End})
		}
		win := windows[len(windows)-1]
		win.end = a.End
		win.remaining = append(win.remaining, a.Remaining)
	}
	whole := 0
	var counts []int
	for _, win := range windows {
		slices.Sort(win.remaining)
		counts = append(counts, len(win.remaining))
		if len(slices.Compact(slices.Clone(win.remaining))) != len(win.remaining) {
			t.Errorf("window ending at %d: two allowed calls were told the same Remaining: "+
				"%v", win.end, win.remaining)
		}
		if len(win.remaining) > int(hammerRule.Allowance) {
			t.Errorf("window ending at %d: %d calls allowed, over the allowance of %d",
				win.end, len(win.remaining), hammerRule.Allowance)
		}
		// Only windows wholly within the time every worker hammered are full.
		if win.end-w-10 >= all.Start && win.end+10 <= all.Stop {
			whole++
			if len(win.remaining) != int(hammerRule.Allowance) {
				t.Errorf("window ending at %d, within the hammering: %d calls allowed, want "+
					"exactly %d", win.end, len(win.remaining), hammerRule.Allowance)
			}
		}
	}
	if whole < 2 {
		t.Errorf("only %d windows of %v wholly within %dms of hammering", whole,
			hammerRule.Window, all.Stop-all.Start)
	}
	for i, r := range burstRules {
		if all.Burst[i] != int(r.Allowance) {
			t.Errorf("%v rule: %d of %d calls allowed, want exactly %d", r.Algorithm,
				all.Burst[i], workerProcs*workerGoroutines*10, r.Allowance)
		}
	}
	t.Logf("%d processes × %d goroutines: %d calls in %dms, %d windows (%d whole), "+
		"allowed per window %v, burst rules %v", workerProcs, workerGoroutines, all.Calls,
		all.Stop-all.Start, len(windows), whole, counts, all.Burst)
}
