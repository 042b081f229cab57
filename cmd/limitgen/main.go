// Command limitgen writes rate-limited wrappers for Socket.IO handlers annotated with
// //limit:socketio directives.
//
// Usage:
//
//	limitgen [flags] [packages]
//
// For every file F.go with annotated handlers, limitgen writes F_limited.go beside it (and
// F_limited_test.go for F_test.go). Run it with go generate:
//
//	//go:generate go run github.com/limitgen/limitgen/cmd/limitgen
//
// or as a tool of the module (go get -tool github.com/limitgen/limitgen/cmd/limitgen):
//
//	//go:generate go tool limitgen
//
// In CI, "limitgen -check ./..." writes nothing and exits 1 with a diff when a generated
// file is missing, stale or out of date.
//
// The packages default to ".". limitgen prints a one-line summary; -v also lists every
// handler and its rule. It exits 1 on any error, and then writes nothing.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/limitgen/limitgen/generator"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("limitgen", flag.ContinueOnError)
	flags.SetOutput(stderr)
	verbose := flags.Bool("v", false, "list every handler with its rule")
	tags := flags.String("tags", "", "comma-separated build tags to load packages with")
	strict := flags.Bool("strict", false, "treat a handler used without its limit as an error")
	check := flags.Bool("check", false, "write nothing; print a diff and exit 1 if any "+
		"generated file is missing, stale or out of date")
	flags.Usage = func() {
		fmt.Fprintf(stderr, "usage: limitgen [flags] [packages]\n\n"+
			"Writes F_limited.go beside each Go file F.go with //limit:socketio handlers.\n\n")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 1
	}

	cfg := generator.Config{}
	if *tags != "" {
		cfg.BuildFlags = []string{"-tags=" + *tags}
	}
	plan, err := generator.Generate(cfg, flags.Args()...)
	var problems generator.ErrorList
	if err != nil && plan != nil && errors.As(err, &problems) {
		// Uses of handlers without their limit are reported with the other problems.
		if *strict {
			report(stderr, append(problems, plan.Bypasses...).Err())
		} else {
			warn(stderr, plan.Bypasses)
			report(stderr, err)
		}
		return 1
	}
	if err != nil {
		report(stderr, err)
		return 1
	}
	if len(plan.Bypasses) > 0 {
		if *strict {
			report(stderr, plan.Bypasses)
			return 1
		}
		warn(stderr, plan.Bypasses)
	}
	if *verbose {
		for _, h := range plan.Handlers {
			fmt.Fprintf(stdout, "%s: %s: %s\n", relative(h.Pos.String()), h.Display, h.Rule())
		}
	}
	if *check {
		return runCheck(plan, stdout, stderr)
	}
	summary, err := plan.Apply()
	if err != nil {
		report(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "limitgen: %s, %s written, %d unchanged, %d removed\n",
		count(summary.Handlers, "handler"), count(summary.Written, "file"), summary.Unchanged,
		summary.Removed)
	return 0
}

// runCheck prints what generating would change, and fails when it would change anything.
func runCheck(plan *generator.Plan, stdout, stderr io.Writer) int {
	diff, err := plan.Check()
	if err != nil {
		report(stderr, err)
		return 1
	}
	if len(diff) > 0 {
		stdout.Write([]byte(relative(string(diff))))
		fmt.Fprintf(stderr, "limitgen: generated files are out of date; run go generate "+
			"and commit the result\n")
		return 1
	}
	fmt.Fprintf(stdout, "limitgen: %s, %s up to date\n", count(len(plan.Handlers), "handler"),
		count(len(plan.Files), "file"))
	return 0
}

// warn prints each use of a handler without its limit as a warning.
func warn(w io.Writer, bypasses generator.ErrorList) {
	for _, e := range bypasses {
		fmt.Fprintf(w, "warning: %s\n", relative(e.Error()))
	}
}

// report prints each problem on its own line, with paths relative to the current directory.
func report(w io.Writer, err error) {
	var list generator.ErrorList
	if errors.As(err, &list) {
		for _, e := range list {
			fmt.Fprintf(w, "%s\n", relative(e.Error()))
		}
		fmt.Fprintf(w, "limitgen: %s; nothing was written\n", count(len(list), "problem"))
		return
	}
	fmt.Fprintf(w, "limitgen: %s\n", relative(err.Error()))
}

// relative shortens absolute paths under the current directory in a message.
func relative(msg string) string {
	wd, err := os.Getwd()
	if err != nil {
		return msg
	}
	return strings.ReplaceAll(msg, wd+string(filepath.Separator), "")
}

// count says "1 file" or "2 files".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
