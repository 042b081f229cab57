package main

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/tools/go/analysis/singlechecker"

	"github.com/limitgen/limitgen/analyzer"
)

var update = flag.Bool("update", false, "rewrite the expected output in the test scripts")

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"limitgen": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
		"limitvet": func() { singlechecker.Main(analyzer.Analyzer) },
	})
}

// TestScripts runs testdata/script/*.txtar: each is a small module whose go.mod, unless the
// archive has one, requires this repository through a replace. The go command inside works
// offline from the module cache this test runs with.
func TestScripts(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	goEnv := map[string]string{}
	for _, name := range []string{"GOMODCACHE", "GOCACHE", "GOPATH", "GOROOT"} {
		out, err := exec.Command("go", "env", name).Output()
		if err != nil {
			t.Fatalf("go env %s: %v", name, err)
		}
		goEnv[name] = strings.TrimSpace(string(out))
	}
	goSum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}

	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"crlf": crlf,
		},
		UpdateScripts:       *update,
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			for name, value := range goEnv {
				env.Setenv(name, value)
			}
			env.Setenv("GOPROXY", "off")
			env.Setenv("GOFLAGS", "-mod=mod")
			env.Setenv("GOSUMDB", "off")
			env.Setenv("LIMITGEN_ROOT", root)
			if limitvet, err := exec.LookPath("limitvet"); err == nil {
				env.Setenv("LIMITVET", limitvet)
			}
			env.Setenv("PATH", filepath.Join(goEnv["GOROOT"], "bin")+string(os.PathListSeparator)+
				os.Getenv("PATH"))
			if found, err := prepareModules(env.WorkDir, root, goSum); found || err != nil {
				return err
			}
			goMod := filepath.Join(env.WorkDir, "go.mod")
			mod := "module example.com/app\n\ngo 1.26\n\n" +
				"require github.com/limitgen/limitgen v0.0.0\n\n" +
				"replace github.com/limitgen/limitgen => " + root + "\n"
			if err := os.WriteFile(goMod, []byte(mod), 0o644); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(env.WorkDir, "go.sum"), goSum, 0o644)
		},
	})
}

// prepareModules readies the modules an archive brings, if it brings any: $LIMITGEN_ROOT in a
// go.mod names this repository, and each module gets this repository's go.sum so that the
// go command works offline.
func prepareModules(dir, root string, goSum []byte) (found bool, err error) {
	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.Name() != "go.mod" {
			return err
		}
		found = true
		mod, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		mod = []byte(strings.ReplaceAll(string(mod), "$LIMITGEN_ROOT", root))
		if err := os.WriteFile(path, mod, 0o644); err != nil {
			return err
		}
		sum := filepath.Join(filepath.Dir(path), "go.sum")
		if _, err := os.Stat(sum); err == nil {
			return nil
		}
		return os.WriteFile(sum, goSum, 0o644)
	})
	return found, err
}

// crlf rewrites the named files with CRLF line endings.
func crlf(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! crlf")
	}
	for _, name := range args {
		path := ts.MkAbs(name)
		data, err := os.ReadFile(path)
		ts.Check(err)
		data = []byte(strings.ReplaceAll(string(data), "\n", "\r\n"))
		ts.Check(os.WriteFile(path, data, 0o644))
	}
}
