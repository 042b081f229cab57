// Package analyzer reports, as a golang.org/x/tools/go/analysis pass, what limitgen would
// report, without writing anything: malformed //limit:socketio directives, generated files
// that are missing, out of date or stale, and annotated handlers used without their limit
// (registered directly instead of through their generated wrapper).
//
// Run it with go vet through cmd/limitvet, or in any driver of analyzers, such as gopls.
// Uses of a handler from another package are found through facts, so the driver must
// analyze the handler's package too (go vet does).
package analyzer

import (
	"go/ast"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/tools/go/analysis"

	"github.com/limitgen/limitgen/generator"
)

// Analyzer is the limitgen check.
var Analyzer = &analysis.Analyzer{
	Name: "limitgen",
	Doc: "check //limit:socketio directives, their generated wrappers and handlers used " +
		"without their limit",
	URL:       "https://pkg.go.dev/github.com/limitgen/limitgen/analyzer",
	Run:       run,
	FactTypes: []analysis.Fact{new(limitedHandler)},
}

// limitedHandler marks a function or method that has a //limit:socketio directive, so that
// packages importing it can report uses that bypass the limit.
type limitedHandler struct {
	Message string
}

// AFact makes limitedHandler an analysis fact.
func (*limitedHandler) AFact() {}

func (*limitedHandler) String() string { return "limitedHandler" }

func run(pass *analysis.Pass) (any, error) {
	readFile := pass.ReadFile
	if readFile == nil {
		readFile = os.ReadFile
	}
	plan, problems, err := generator.CheckPackage(pass.Fset, pass.Files, pass.IgnoredFiles,
		pass.Pkg, pass.TypesInfo, readFile)
	if err != nil {
		return nil, err
	}
	for _, p := range problems {
		pass.Reportf(position(pass, p.Pos), "%s", p.Msg)
	}
	if plan == nil {
		return nil, nil
	}

	for _, h := range plan.Handlers {
		if fn, ok := pass.TypesInfo.Defs[h.Declaration()].(*types.Func); ok {
			pass.ExportObjectFact(fn, &limitedHandler{Message: h.BypassMessage()})
		}
	}
	for _, b := range plan.Bypasses {
		// The directive is in this package: its file's name is enough, as in the facts.
		dir := filepath.Dir(b.Pos.Filename) + string(filepath.Separator)
		pass.Reportf(position(pass, b.Pos), "%s", strings.ReplaceAll(b.Msg, dir, ""))
	}
	reportImportedBypasses(pass)

	for _, f := range plan.Files {
		old, err := os.ReadFile(f.Path)
		first := position(pass, firstDirectiveOf(plan, f.Source))
		switch {
		case err != nil:
			pass.Reportf(first, "%s is missing: run go generate", filepath.Base(f.Path))
		case string(old) != string(f.Content):
			pass.Reportf(first, "%s is out of date: run go generate", filepath.Base(f.Path))
		}
	}
	for _, path := range plan.Stale {
		for _, file := range pass.Files {
			if pass.Fset.File(file.Package).Name() == path {
				pass.Reportf(file.Package, "%s is stale: its source has no %s handlers; run "+
					"go generate to remove it", filepath.Base(path), generator.Prefix)
			}
		}
	}
	return nil, nil
}

// reportImportedBypasses reports uses of annotated handlers of other packages.
func reportImportedBypasses(pass *analysis.Pass) {
	for _, file := range pass.Files {
		name := pass.Fset.File(file.Package).Name()
		if strings.HasSuffix(name, "_test.go") || isGenerated(file) {
			continue
		}
		ast.Inspect(file, func(n ast.Node) bool {
			id, ok := n.(*ast.Ident)
			if !ok {
				return true
			}
			fn, ok := pass.TypesInfo.Uses[id].(*types.Func)
			if !ok || fn.Pkg() == nil || fn.Pkg() == pass.Pkg {
				return true
			}
			var fact limitedHandler
			if pass.ImportObjectFact(fn.Origin(), &fact) {
				pass.Reportf(id.Pos(), "%s", fact.Message)
			}
			return true
		})
	}
}

func isGenerated(file *ast.File) bool {
	return len(file.Comments) > 0 && file.Comments[0].Pos() < file.Package &&
		file.Comments[0].List[0].Text == generator.Header
}

// firstDirectiveOf is the position of the first directive in source.
func firstDirectiveOf(plan *generator.Plan, source string) token.Position {
	for _, h := range plan.Handlers {
		if h.File == source {
			return h.Directive.Pos
		}
	}
	return token.Position{}
}

// position turns a reported file:line:col back into a position in the pass's files.
func position(pass *analysis.Pass, p token.Position) token.Pos {
	for _, file := range pass.Files {
		tf := pass.Fset.File(file.Package)
		if tf.Name() != p.Filename && pass.Fset.Position(file.Package).Filename != p.Filename {
			continue
		}
		if p.Line < 1 || p.Line > tf.LineCount() {
			return file.Package
		}
		return tf.LineStart(p.Line) + token.Pos(p.Column-1)
	}
	return token.NoPos
}
