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
	hammerFor        = 1500 * time.Millisecond
)

var (
	// hammerRule has short windows, so that the hammering spans several.
	hammerRule = Rule{Pool: "procs-fixed", Window: 300 * time.Millisecond, Allowance: 25}
	// burstRules have windows longer than the test: each allows its allowance in total.
	burstRules = []Rule{
		{Pool: "procs-sliding", Window: time.Minute, Allowance: 40, Algorithm: SlidingWindow},
		{Pool: "procs-gcra", Window: time.Minute, Allowance: 40, Algorithm: GCRA},
		{Pool: "procs-fixed-long", Window: time.Minute, Allowance: 40},
	}
)

// workerResult is what one worker process saw.
type workerResult struct {
	Start, Stop int64   // when the hammering began and ended, in Unix ms
	Ends        []int64 // for each allowed call of hammerRule, when its window ends
	Burst       []int   // for each of burstRules, the calls allowed
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
			var ends []int64
			calls, notStore := 0, 0
			for time.Now().Before(stop) {
				d := lim.Allow(&hammerRule, "one")
				calls++
				if d.Source != SourceStore {
					notStore++
				}
				if d.Allowed {
					ends = append(ends, time.Now().UnixMilli()+d.ResetAfter.Milliseconds())
				}
			}
			mu.Lock()
			defer mu.Unlock()
			res.Ends = append(res.Ends, ends...)
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
		all.Ends = append(all.Ends, r.Ends...)
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
	// for one window differ by a few ms of clock reading, windows by 300ms.
	slices.Sort(all.Ends)
	type window struct {
		end   int64
		calls int
	}
	var windows []window
	for _, e := range all.Ends {
		if n := len(windows); n > 0 && e-windows[n-1].end < hammerRule.Window.Milliseconds()/2 {
			windows[n-1].calls++
			continue
		}
		windows = append(windows, window{e, 1})
	}
	w := hammerRule.Window.Milliseconds()
	whole := 0
	for _, win := range windows {
		if win.calls > int(hammerRule.Allowance) {
			t.Errorf("window ending at %d: %d calls allowed, over the allowance of %d",
				win.end, win.calls, hammerRule.Allowance)
		}
		// Only windows wholly within the time every worker hammered are full.
		if win.end-w-10 >= all.Start && win.end+10 <= all.Stop {
			whole++
			if win.calls != int(hammerRule.Allowance) {
				t.Errorf("window ending at %d, within the hammering: %d calls allowed, want "+
					"exactly %d", win.end, win.calls, hammerRule.Allowance)
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
		"allowed per window (end in Unix ms, calls) %v", workerProcs, workerGoroutines,
		all.Calls, all.Stop-all.Start, len(windows), whole, windows)
}
