// Package generator finds Socket.IO handlers annotated with //limit:socketio, checks each
// directive against the handler's types, and writes one F_limited.go file next to every
// source file F.go that has annotated handlers.
//
// It runs in three steps, each over every package named on the command line:
//
//  1. find: load the packages with go/packages and collect the directives in doc comments
//     of function and method declarations (directives anywhere else are errors);
//  2. validate: parse each directive and type-check what it says (the identity expression,
//     the disconnect target, the on= function) against the handler's signature;
//  3. emit: render one wrapper per handler with jennifer, gofmt'd, byte-for-byte the same for
//     the same input.
//
// Every problem of a run is collected and reported together with its file:line:col, and
// nothing is written when there is any. Writing is a separate step (Plan.Apply), so that a
// caller can compare instead of writing.
package generator

import (
	"cmp"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"maps"
	"os"
	pathpkg "path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/tools/go/packages"
)

// RuntimePath is the import path of the package generated code calls.
const RuntimePath = "github.com/limitgen/limitgen/runtime"

// Config says where and how to load packages.
type Config struct {
	Dir        string   // directory to run in; empty means the current one
	Env        []string // environment of the go command; nil means os.Environ()
	BuildFlags []string // flags for the go command, such as -tags=integration
}

// Handler is one annotated function or method, checked and ready to be emitted.
type Handler struct {
	Directive Directive      // the first directive, with the handler's by= and on=
	Rules     []Directive    // every directive, one rule each
	Pos       token.Position // of the func keyword
	File      string         // the source file's path
	Name      string         // Chat
	Display   string         // Chat, or (*Client).Chat for a method
	Identity  string         // the identity expression as written in the wrapper

	decl       *ast.FuncDecl
	sig        *types.Signature
	sourceInfo *types.Info // of the package variant the handler was read from
	plan       wrapperPlan
}

// Rule describes the handler's rules in words, such as
// "10 calls per minute in pool \"chat\" for each c.ID()".
func (h *Handler) Rule() string {
	parts := make([]string, len(h.Rules))
	for i, d := range h.Rules {
		parts[i] = ruleWords(d)
	}
	return strings.Join(parts, " and ") + " for each " + h.Identity
}

// ruleWords says one rule: "3 calls per second in pool \"chat\"", with its algorithm and
// cost when they are not the defaults.
func ruleWords(d Directive) string {
	calls := "calls"
	if d.Allowance == 1 {
		calls = "call"
	}
	s := fmt.Sprintf("%d %s per %s", d.Allowance, calls, windowWords(d.Window))
	switch d.Algorithm {
	case "sliding":
		s += " (sliding window)"
	case "gcra":
		s += " (GCRA)"
	}
	if d.Cost != 1 {
		s += fmt.Sprintf(", each call costing %d,", d.Cost)
	}
	return s + fmt.Sprintf(" in pool %q", d.Pool)
}

// Generate loads the packages matching patterns, finds and checks every annotated handler
// and renders the files to write. It writes nothing; see Plan.Apply. When the code has
// problems, the error is an ErrorList of them and the plan, if not nil, holds only the
// Bypasses found among the handlers that passed their checks.
func Generate(cfg Config, patterns ...string) (*Plan, error) {
	if len(patterns) == 0 {
		patterns = []string{"."}
	}
	l, err := load(cfg, patterns)
	if err != nil {
		return nil, err
	}
	plan, problems, err := planFiles(l.sourceFiles(), l.dirs())
	if err != nil {
		return nil, err
	}
	if err := problems.Err(); err != nil {
		return plan, err
	}
	return plan, nil
}

// CheckPackage runs limitgen's checks on one package type-checked by someone else, such as
// the go vet driver. It returns what Generate would plan for the package and the problems it
// found; files limitgen generated are recognised by their header and skipped. ignored are
// the package's files that build constraints leave out (their names are avoided as Generate
// avoids them).
func CheckPackage(fset *token.FileSet, files []*ast.File, ignored []string, pkg *types.Package,
	info *types.Info, readFile func(string) ([]byte, error)) (*Plan, ErrorList, error) {

	elsewhere := declaredIn(ignored, readFile)
	var sources []sourceFile
	for _, f := range files {
		path := fset.Position(f.Package).Filename
		src, err := readFile(fset.File(f.Package).Name())
		if err != nil {
			return nil, nil, fmt.Errorf("reading %s: %w", path, err)
		}
		if IsGenerated(src) {
			continue
		}
		sources = append(sources, sourceFile{path: path, fset: fset, src: src, ast: f,
			types: pkg, info: info, wide: pkg, elsewhere: elsewhere})
	}
	var dirs []string
	for _, f := range files {
		dirs = append(dirs, filepath.Dir(fset.Position(f.Package).Filename))
	}
	return planFiles(sources, dirs)
}

// planFiles finds and checks the handlers of sources and renders their generated files, and
// finds stale ones in the directories of sources and in dirs (those of packages whose only
// Go files may be stale generated ones). Problems in the user's code come back as an
// ErrorList, and then the plan holds only the Bypasses.
func planFiles(sources []sourceFile, dirs []string) (*Plan, ErrorList, error) {
	var problems ErrorList
	var handlers []*Handler
	for _, sf := range sources {
		handlers = append(handlers, findHandlers(sf, &problems)...)
	}
	checkPools(handlers, &problems)
	bypasses := findBypasses(sources, handlers)
	if len(problems) > 0 {
		return &Plan{Bypasses: bypasses}, problems, nil
	}

	plan := &Plan{Handlers: handlers, Bypasses: bypasses}
	byFile := map[string][]*Handler{}
	for _, h := range handlers {
		byFile[h.File] = append(byFile[h.File], h)
	}
	for _, sf := range sources {
		hs := byFile[sf.path]
		if len(hs) == 0 {
			continue
		}
		content, err := emitFile(sf, hs)
		if err != nil {
			return nil, nil, fmt.Errorf("rendering wrappers for %s: %w", sf.path, err)
		}
		plan.Files = append(plan.Files, File{Path: outputPath(sf.path), Source: sf.path,
			Content: content})
	}

	stale, err := staleFiles(sources, dirs, plan.Files)
	if err != nil {
		return nil, nil, err
	}
	plan.Stale = stale
	return plan, nil, nil
}

// sourceFile is one parsed Go file of a loaded package with its type information, seen once
// even when the package is loaded twice (once plain, once with its tests).
type sourceFile struct {
	path  string // of the file as the user wrote it
	fset  *token.FileSet
	src   []byte // the text ast was parsed from
	ast   *ast.File
	types *types.Package // the file's package as built without tests, if it is built so
	info  *types.Info
	// wide is the package with every file that shares its scope, _test.go files included:
	// the names a generated file must not clash with.
	wide *types.Package
	// elsewhere holds the names that files of the package left out by build constraints
	// declare, which generated files avoid too: their content must not depend on the
	// GOOS, GOARCH or tags limitgen runs with.
	elsewhere nameSet
}

// declaredIn returns the names the Go files at paths declare at package level, and the
// names their imports bind; files that do not parse are skipped.
func declaredIn(paths []string, readFile func(string) ([]byte, error)) nameSet {
	names := nameSet{}
	fset := token.NewFileSet()
	for _, path := range paths {
		if !strings.HasSuffix(path, ".go") {
			continue
		}
		src, err := readFile(path)
		if err != nil || IsGenerated(src) {
			continue
		}
		f, err := parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
		if err != nil {
			continue
		}
		for _, spec := range f.Imports {
			if spec.Name != nil {
				names[spec.Name.Name] = true
			} else if path, err := strconv.Unquote(spec.Path.Value); err == nil {
				names[pathpkg.Base(path)] = true // the usual package name
			}
		}
		for _, decl := range f.Decls {
			switch decl := decl.(type) {
			case *ast.FuncDecl:
				if decl.Recv == nil {
					names[decl.Name.Name] = true
				}
			case *ast.GenDecl:
				for _, spec := range decl.Specs {
					switch spec := spec.(type) {
					case *ast.TypeSpec:
						names[spec.Name.Name] = true
					case *ast.ValueSpec:
						for _, n := range spec.Names {
							names[n.Name] = true
						}
					}
				}
			}
		}
	}
	return names
}

func (l *loaded) sourceFiles() []sourceFile {
	seen := map[string]bool{}
	var files []sourceFile
	// A package's plain variant comes before its test variant, so that a wrapper for a
	// non-test file is checked against what builds without tests: an ID() method or an on=
	// function declared only in a _test.go file must not satisfy it.
	pkgs := slices.Clone(l.packages)
	slices.SortStableFunc(pkgs, func(a, b *packages.Package) int {
		return cmp.Compare(len(a.Syntax), len(b.Syntax))
	})
	wide := map[string]*types.Package{} // by file path
	elsewhere := map[string]nameSet{}   // by file path
	for _, pkg := range pkgs {
		names := declaredIn(pkg.IgnoredFiles, os.ReadFile)
		for _, f := range pkg.Syntax {
			path := l.filePath(pkg, f)
			wide[path] = pkg.Types // the last is the widest
			if elsewhere[path] == nil {
				elsewhere[path] = nameSet{}
			}
			maps.Copy(elsewhere[path], names)
		}
	}
	for _, pkg := range pkgs {
		for _, f := range pkg.Syntax {
			parsed := l.fset.File(f.Package).Name()
			path := l.filePath(pkg, f)
			src := l.source(parsed)
			if seen[path] || src == nil {
				continue // seen in the package's other variant, or generated by limitgen
			}
			seen[path] = true
			files = append(files, sourceFile{path: path, fset: l.fset, src: src, ast: f,
				types: pkg.Types, info: pkg.TypesInfo, wide: wide[path],
				elsewhere: elsewhere[path]})
		}
	}
	slices.SortFunc(files, func(a, b sourceFile) int { return strings.Compare(a.path, b.path) })
	return files
}

// filePath is the path of a file of pkg as the user wrote it. A cgo file is parsed from the
// go command's rewrite of it, whose //line comments name the original; any other file is
// named as it is, whatever //line comments it holds itself.
func (l *loaded) filePath(pkg *packages.Package, f *ast.File) string {
	parsed := l.fset.File(f.Package).Name()
	if slices.Contains(pkg.GoFiles, parsed) {
		return parsed
	}
	return l.fset.Position(f.Package).Filename
}

// dirs lists the directories of the loaded packages' Go files, generated ones included.
func (l *loaded) dirs() []string {
	var dirs []string
	for _, pkg := range l.packages {
		for _, f := range pkg.GoFiles {
			dirs = append(dirs, filepath.Dir(f))
		}
	}
	return dirs
}

// outputPath names the generated file for a source file: F.go -> F_limited.go and
// F_test.go -> F_limited_test.go.
func outputPath(source string) string {
	if base, ok := strings.CutSuffix(source, "_test.go"); ok {
		return base + "_limited_test.go"
	}
	return strings.TrimSuffix(source, ".go") + "_limited.go"
}

// sourcePath is the inverse of outputPath; ok is false for a name outputPath never returns.
func sourcePath(output string) (string, bool) {
	if base, ok := strings.CutSuffix(output, "_limited_test.go"); ok {
		return base + "_test.go", true
	}
	if base, ok := strings.CutSuffix(output, "_limited.go"); ok {
		return base + ".go", true
	}
	return "", false
}

// staleFiles lists files limitgen generated earlier, in the loaded packages' directories,
// whose source file is gone or no longer has directives. A generated file whose source
// exists but was not loaded (excluded by build constraints) is left alone.
func staleFiles(sources []sourceFile, packageDirs []string, outputs []File) ([]string,
	error) {
	loadedSource := map[string]bool{}
	dirs := map[string]bool{}
	for _, dir := range packageDirs {
		dirs[dir] = true
	}
	for _, sf := range sources {
		loadedSource[sf.path] = true
		dirs[filepath.Dir(sf.path)] = true
	}
	written := map[string]bool{}
	for _, f := range outputs {
		written[f.Path] = true
	}

	var stale []string
	for _, dir := range slices.Sorted(maps.Keys(dirs)) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("listing %s for stale generated files: %w", dir, err)
		}
		for _, e := range entries {
			path := filepath.Join(dir, e.Name())
			source, ok := sourcePath(path)
			if !ok || e.IsDir() || written[path] {
				continue
			}
			if _, err := os.Stat(source); err == nil && !loadedSource[source] {
				continue
			}
			if generated, err := fileIsGenerated(path); err != nil {
				return nil, err
			} else if generated {
				stale = append(stale, path)
			}
		}
	}
	return stale, nil
}

func fileIsGenerated(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	buf := make([]byte, len(Header)+8)
	n, _ := f.Read(buf)
	return IsGenerated(buf[:n]), nil
}

// checkPools reports rules that give one pool different limits: the handlers share one
// counter per identity, so one of the rules would silently win. Costs may differ.
func checkPools(handlers []*Handler, errs *ErrorList) {
	first := map[string]Directive{}
	for _, h := range handlers {
		for _, d := range h.Rules {
			od, ok := first[d.Pool]
			if !ok {
				first[d.Pool] = d
				continue
			}
			if od.Window != d.Window || od.Allowance != d.Allowance || od.Algorithm != d.Algorithm {
				errs.Add(d.Pos, "pool %q is %s here but %s at %s; rules sharing a pool "+
					"must give it the same window, allowance and algo", d.Pool,
					limitWords(d), limitWords(od), od.Pos)
			}
		}
	}
}

func limitWords(d Directive) string {
	return fmt.Sprintf("%d per %s (%s)", d.Allowance, windowWords(d.Window), d.Algorithm)
}

// windowWords says a window the way a person would: "minute", "10 seconds", "1.5s".
func windowWords(w time.Duration) string {
	units := []struct {
		size      time.Duration
		one, many string
	}{
		{time.Hour, "hour", "hours"},
		{time.Minute, "minute", "minutes"},
		{time.Second, "second", "seconds"},
		{time.Millisecond, "millisecond", "milliseconds"},
	}
	for _, u := range units {
		if w%u.size != 0 {
			continue
		}
		if n := w / u.size; n != 1 {
			return fmt.Sprintf("%d %s", n, u.many)
		}
		return u.one
	}
	return w.String()
}
