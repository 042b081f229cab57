package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkLargeModule compares limitgen with go vet on a module of 1,000 annotated handlers
// in 50 packages. Before each timed command every handler file is edited, so that neither
// answers from the go command's cache. It reports both times and their ratio:
//
//	go test -run '^$' -bench LargeModule -benchtime 5x ./cmd/limitgen
func BenchmarkLargeModule(b *testing.B) {
	root, err := filepath.Abs("../..")
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	files := writeLargeModule(b, dir, root, 50, 20)
	wd, _ := os.Getwd()
	b.Cleanup(func() { os.Chdir(wd) })
	b.Setenv("GOFLAGS", "-mod=mod")
	if err := os.Chdir(dir); err != nil {
		b.Fatal(err)
	}
	if code := run([]string{"./..."}, io.Discard, os.Stderr); code != 0 {
		b.Fatalf("first generation failed: exit %d", code)
	}

	var limitgenTime, vetTime time.Duration
	edit := 0
	touch := func() {
		edit++
		for _, f := range files {
			src, err := os.ReadFile(f)
			if err != nil {
				b.Fatal(err)
			}
			src = append(src, fmt.Sprintf("\n// edit %d\n", edit)...)
			if err := os.WriteFile(f, src, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ResetTimer()
	for range b.N {
		touch()
		start := time.Now()
		if code := run([]string{"./..."}, io.Discard, os.Stderr); code != 0 {
			b.Fatalf("limitgen failed: exit %d", code)
		}
		limitgenTime += time.Since(start)

		touch()
		start = time.Now()
		vet := exec.Command("go", "vet", "./...")
		if out, err := vet.CombinedOutput(); err != nil {
			b.Fatalf("go vet: %v\n%s", err, out)
		}
		vetTime += time.Since(start)
	}
	b.StopTimer()
	b.ReportMetric(limitgenTime.Seconds()/float64(b.N), "limitgen-s/op")
	b.ReportMetric(vetTime.Seconds()/float64(b.N), "vet-s/op")
	b.ReportMetric(limitgenTime.Seconds()/vetTime.Seconds(), "limitgen/vet")
}

// writeLargeModule writes a module of pkgs packages with handlers annotated handlers each
// and returns the handler files.
func writeLargeModule(b *testing.B, dir, root string, pkgs, handlers int) []string {
	goSum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		b.Fatal(err)
	}
	mod := "module example.com/large\n\ngo 1.26\n\nrequire github.com/limitgen/limitgen v0.0.0\n\n" +
		"replace github.com/limitgen/limitgen => " + root + "\n"
	write(b, filepath.Join(dir, "go.mod"), mod)
	write(b, filepath.Join(dir, "go.sum"), string(goSum))

	var files []string
	for p := range pkgs {
		var src strings.Builder
		fmt.Fprintf(&src, "package p%d\n\nimport \"github.com/limitgen/limitgen/runtime\"\n\n", p)
		src.WriteString("type Client struct{ user string }\n\n")
		src.WriteString("func (c *Client) ID() string { return c.user }\n\n")
		for h := range handlers {
			fmt.Fprintf(&src, "//limit:socketio key=k%d window=%ds allowance=%d\n", h, h+1, h+2)
			fmt.Fprintf(&src, "func (c *Client) Event%d(args ...any) error { return nil }\n\n", h)
		}
		src.WriteString("func Register(c *Client, lim *runtime.Limiter) []any {\n\treturn []any{\n")
		for h := range handlers {
			fmt.Fprintf(&src, "\t\tc.Event%dLimited(lim),\n", h)
		}
		src.WriteString("\t}\n}\n")
		path := filepath.Join(dir, fmt.Sprintf("p%d", p), "handlers.go")
		write(b, path, src.String())
		files = append(files, path)
	}
	return files
}

func write(b *testing.B, path, content string) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		b.Fatal(err)
	}
}
