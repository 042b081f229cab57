package generator

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/build/constraint"
	"go/token"
	"go/types"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dave/jennifer/jen"
	"golang.org/x/tools/imports"
)

// emitFile renders the generated file for the annotated handlers of one source file.
func emitFile(sf sourceFile, handlers []*Handler) ([]byte, error) {
	f := jen.NewFilePathName(sf.types.Path(), sf.types.Name())
	header := Header
	if expr := buildConstraint(sf); expr != nil {
		header += "\n\n//go:build " + expr.String()
	}
	f.HeaderComment(header)
	chooseImportNames(f, sf, handlers)

	for i, h := range handlers {
		if i > 0 {
			f.Line()
		}
		r := &renderer{fset: sf.fset, src: sf.src, info: sf.info,
			pkg: sf.types, renamed: h.plan.renamed}
		emitWrapper(f, r, h)
	}

	var buf bytes.Buffer
	if err := f.Render(&buf); err != nil {
		return nil, err
	}
	// Jennifer puts every import in one group; goimports' layout (the standard library
	// first, then the rest) is what a reviewer expects. FormatOnly adds or removes nothing.
	return imports.Process(sf.path, buf.Bytes(), &imports.Options{FormatOnly: true,
		Comments: true, TabIndent: true, TabWidth: 8})
}

// chooseImportNames keeps the source file's names for the packages it imports (a dot or
// blank import gets the package's own name) and picks names for the packages the wrappers
// need that clash with nothing in the package or in the handlers' signatures.
func chooseImportNames(f *jen.File, sf sourceFile, handlers []*Handler) {
	taken := nameSet{}
	for _, h := range handlers {
		for name := range takenNames(sf, h.decl) {
			taken[name] = true
		}
	}

	// A handler's receiver and type parameters are in scope in all of its wrapper, where
	// they would hide an import of the same name. (Its parameters are in scope only in the
	// returned function, whose body uses no import that a parameter may hide.)
	declared := nameSet{}
	for _, h := range handlers {
		for _, list := range []*ast.FieldList{h.decl.Recv, h.decl.Type.TypeParams} {
			for _, field := range fieldsOf(list) {
				for _, n := range field.Names {
					declared[n.Name] = true
				}
			}
		}
		if h.decl.Recv != nil {
			for _, tp := range receiverTypeParams(h.decl.Recv.List[0].Type) {
				declared[tp] = true
			}
		}
	}

	chosen := map[string]string{}
	for _, spec := range sf.ast.Imports {
		obj, _ := sf.info.Implicits[spec].(*types.PkgName)
		if spec.Name != nil {
			obj, _ = sf.info.Defs[spec.Name].(*types.PkgName)
		}
		if obj == nil {
			continue
		}
		name := obj.Name()
		if spec.Name != nil && (spec.Name.Name == "." || spec.Name.Name == "_") ||
			declared[name] {
			name = taken.fresh(obj.Imported().Name())
		}
		taken[name] = true
		chosen[obj.Imported().Path()] = name
	}

	pick := func(path string, candidates ...string) {
		if _, ok := chosen[path]; ok {
			return
		}
		name := candidates[0]
		for _, candidate := range candidates {
			if !taken[candidate] {
				name = candidate
				break
			}
		}
		chosen[path] = taken.fresh(name)
	}
	pick(RuntimePath, "runtime", "limitruntime")
	pick("time", "time", "stdtime")
	pick("strconv", "strconv", "stdstrconv")

	for path, name := range chosen {
		if name == filepath.Base(path) {
			f.ImportName(path, name)
		} else {
			f.ImportAlias(path, name)
		}
	}
}

func fieldsOf(list *ast.FieldList) []*ast.Field {
	if list == nil {
		return nil
	}
	return list.List
}

// receiverTypeParams are the names a receiver type such as *Room[K, V] declares.
func receiverTypeParams(recv ast.Expr) []string {
	if star, ok := recv.(*ast.StarExpr); ok {
		recv = star.X
	}
	var indices []ast.Expr
	switch x := recv.(type) {
	case *ast.IndexExpr:
		indices = []ast.Expr{x.Index}
	case *ast.IndexListExpr:
		indices = x.Indices
	}
	var names []string
	for _, index := range indices {
		if id, ok := index.(*ast.Ident); ok {
			names = append(names, id.Name)
		}
	}
	return names
}

// emitWrapper renders the wrapper of one handler: a function (or method on the same
// receiver) that takes a limiter and returns a function with the handler's signature.
func emitWrapper(f *jen.File, r *renderer, h *Handler) {
	p := &h.plan

	for _, line := range strings.Split(wrapperDoc(h), "\n") {
		f.Comment(line)
	}
	def := f.Func()
	if p.recvName != "" {
		def.Params(jen.Id(p.recvName).Add(r.node(h.decl.Recv.List[0].Type)))
	}
	def.Id(h.Name + "Limited")
	if len(p.typeParams) > 0 {
		def.Types(r.fields(p.typeParams)...)
	}
	handlerType := jen.Func().Params(r.params(p.params)...).Add(r.results(p.results))
	def.Params(jen.Id(p.limiter).Op("*").Qual(RuntimePath, "Limiter")).Add(handlerType)

	var rules jen.Code
	if len(h.Rules) == 1 {
		fields := ruleFields(h.Rules[0])
		rules = jen.Id(p.rule).Op(":=").Op("&").Qual(RuntimePath, "Rule").
			ValuesFunc(func(g *jen.Group) {
				for _, field := range fields {
					if len(fields) > 3 {
						g.Line().Add(field)
					} else {
						g.Add(field)
					}
				}
				if len(fields) > 3 {
					g.Line()
				}
			})
	} else {
		list := make([]jen.Code, len(h.Rules))
		for i, rd := range h.Rules {
			list[i] = jen.Values(ruleFields(rd)...)
		}
		rules = jen.Id(p.rule).Op(":=").Index().Op("*").Qual(RuntimePath, "Rule").
			ValuesFunc(func(g *jen.Group) {
				for _, item := range list {
					g.Line().Add(item)
				}
				g.Line()
			})
	}
	// A nil limiter fails where the wrapper is registered, not on the first event.
	nilCheck := jen.If(jen.Id(p.limiter).Op("==").Nil()).Block(jen.Panic(jen.Lit(
		h.Display + "Limited: nil *runtime.Limiter (make one with runtime.New)")))
	def.Block(nilCheck, jen.Line(), rules, jen.Return(jen.Func().Params(r.params(p.params)...).
		Add(r.results(p.results)).Block(wrapperBody(r, h)...)))
}

// ruleFields are the fields of a runtime.Rule literal; algorithm and cost only when they are
// not the defaults.
func ruleFields(d Directive) []jen.Code {
	fields := []jen.Code{
		jen.Id("Pool").Op(":").Lit(d.Pool),
		jen.Id("Window").Op(":").Add(windowCode(d.Window)),
		jen.Id("Allowance").Op(":").Id(strconv.FormatInt(d.Allowance, 10)),
	}
	if d.Algorithm != "fixed" {
		fields = append(fields, jen.Id("Algorithm").Op(":").
			Qual(RuntimePath, Algorithms[d.Algorithm]))
	}
	if d.Cost != 1 {
		fields = append(fields, jen.Id("Cost").Op(":").Id(strconv.FormatInt(d.Cost, 10)))
	}
	return fields
}

// wrapperBody is: ask the limiter; over the limit, do what the directive says; otherwise
// call the handler.
func wrapperBody(r *renderer, h *Handler) []jen.Code {
	p := &h.plan
	d := h.Directive
	method := "Allow"
	if len(h.Rules) > 1 {
		method = "AllowAll"
	}
	allow := jen.Id(p.limiter).Dot(method).Call(jen.Id(p.rule), identityCode(r, h))

	var denied []jen.Code
	needsDecision := d.On != Drop || p.lastIsError
	switch d.On {
	case Call:
		args := append([]jen.Code{jen.Id(p.decision)}, callArgs(p.params)...)
		call := jen.Id(p.onCall)
		if len(p.typeArgNames) > 0 && p.recvName == "" {
			call.Types(idList(p.typeArgNames)...)
		}
		call.Call(args...)
		if len(p.results) > 0 {
			denied = append(denied, jen.Return(call))
		} else {
			denied = append(denied, call, jen.Return())
		}
	case Disconnect:
		denied = append(denied, jen.If(jen.Id(p.decision).Dot("Exceeded").Call()).
			Block(jen.Id(p.disconnect)))
		fallthrough
	default:
		denied = append(denied, zeroReturn(r, h)...)
	}

	var check *jen.Statement
	if needsDecision {
		check = jen.If(jen.Id(p.decision).Op(":=").Add(allow), jen.Op("!").Id(p.decision).
			Dot("Allowed")).Block(denied...)
	} else {
		check = jen.If(jen.Op("!").Add(allow).Dot("Allowed")).Block(denied...)
	}

	var call *jen.Statement
	if p.recvName != "" {
		call = jen.Id(p.recvName).Dot(h.Name)
	} else {
		call = jen.Id(h.Name)
		if len(p.typeArgNames) > 0 {
			call.Types(idList(p.typeArgNames)...)
		}
	}
	call.Call(callArgs(p.params)...)
	if len(p.results) > 0 {
		return []jen.Code{check, jen.Line(), jen.Return(call)}
	}
	return []jen.Code{check, jen.Line(), call}
}

// zeroReturn returns from a dropped call: zero values, and the limit error in a last error
// result.
func zeroReturn(r *renderer, h *Handler) []jen.Code {
	p := &h.plan
	if len(p.results) == 0 {
		return []jen.Code{jen.Return()}
	}
	var decls, values []jen.Code
	for i, t := range p.resultTs {
		if i == len(p.resultTs)-1 && p.lastIsError {
			values = append(values, jen.Id(p.decision).Dot("Err").Call())
			continue
		}
		if zero := zeroLiteral(t); zero != nil {
			values = append(values, zero)
			continue
		}
		name := p.taken.fresh("zero")
		decls = append(decls, jen.Var().Id(name).Add(r.node(p.results[i])))
		values = append(values, jen.Id(name))
	}
	return append(decls, jen.Return(values...))
}

// zeroLiteral is the literal zero value of t, or nil when t needs a variable.
func zeroLiteral(t types.Type) jen.Code {
	if _, ok := t.(*types.TypeParam); ok {
		return nil
	}
	switch u := t.Underlying().(type) {
	case *types.Basic:
		switch {
		case u.Info()&types.IsString != 0:
			return jen.Lit("")
		case u.Info()&types.IsBoolean != 0:
			return jen.False()
		case u.Info()&types.IsNumeric != 0:
			return jen.Lit(0)
		default:
			return jen.Nil()
		}
	case *types.Pointer, *types.Slice, *types.Map, *types.Chan, *types.Signature,
		*types.Interface:
		return jen.Nil()
	}
	return nil
}

// identityCode is the identity expression, converted to a string if it is not one.
func identityCode(r *renderer, h *Handler) jen.Code {
	id := h.plan.identity
	var expr jen.Code = jen.Id(string(id.src))
	if id.info != nil {
		byRenderer := *r
		byRenderer.src, byRenderer.info = id.src, id.info
		expr = byRenderer.node(id.expr)
	}
	switch id.convert {
	case "string":
		return jen.String().Call(expr)
	case "int":
		return jen.Qual("strconv", "FormatInt").Call(jen.Int64().Call(expr), jen.Lit(10))
	case "uint":
		return jen.Qual("strconv", "FormatUint").Call(jen.Uint64().Call(expr), jen.Lit(10))
	}
	return expr
}

func callArgs(params []param) []jen.Code {
	args := make([]jen.Code, len(params))
	for i, p := range params {
		args[i] = jen.Id(p.name)
		if p.variadic {
			args[i] = jen.Id(p.name).Op("...")
		}
	}
	return args
}

func idList(names []string) []jen.Code {
	ids := make([]jen.Code, len(names))
	for i, n := range names {
		ids[i] = jen.Id(n)
	}
	return ids
}

// windowCode writes a window as a person would: time.Minute, 10 * time.Second.
func windowCode(w time.Duration) jen.Code {
	units := []struct {
		size time.Duration
		name string
	}{{time.Hour, "Hour"}, {time.Minute, "Minute"}, {time.Second, "Second"},
		{time.Millisecond, "Millisecond"}}
	for _, u := range units {
		if w%u.size == 0 {
			if n := int64(w / u.size); n != 1 {
				return jen.Lit(int(n)).Op("*").Qual("time", u.name)
			}
			return jen.Qual("time", u.name)
		}
	}
	return jen.Lit(int64(w))
}

// wrapperDoc says in words what the wrapper does and where its rule comes from, without
// line numbers, so that an edit elsewhere in the file does not change the generated file.
func wrapperDoc(h *Handler) string {
	var over string
	switch h.Directive.On {
	case Drop:
		over = "calls over the limit are dropped"
		if h.plan.lastIsError {
			over += " and return a *runtime.LimitError"
		}
	case Disconnect:
		over = "a caller over the limit is dropped and disconnected (not when the failure " +
			"policy denied the call)"
	case Call:
		over = "calls over the limit go to " + h.plan.onCall
	}
	text := fmt.Sprintf("%sLimited returns %s, from %s, limited to %s; %s.", h.Name,
		h.Display, filepath.Base(h.File), h.Rule(), over)
	return wrap(text, 90)
}

// wrap breaks text into lines of at most width bytes at spaces.
func wrap(text string, width int) string {
	var b strings.Builder
	line := 0
	for i, word := range strings.Fields(text) {
		if i > 0 && line+1+len(word) > width {
			b.WriteString("\n")
			line = 0
		} else if i > 0 {
			b.WriteString(" ")
			line++
		}
		b.WriteString(word)
		line += len(word)
	}
	return b.String()
}

// buildConstraint is the source file's //go:build expression joined with what its name
// implies (chat_linux.go builds only on linux): the generated file's name implies nothing.
func buildConstraint(sf sourceFile) constraint.Expr {
	// A //go:build line is the file's constraint; without one, its // +build lines (all of
	// which must hold) are, as the go command reads them.
	var expr, plusBuild constraint.Expr
	for _, group := range sf.ast.Comments {
		if group.Pos() >= sf.ast.Package {
			break
		}
		for _, c := range group.List {
			switch {
			case constraint.IsGoBuild(c.Text):
				expr, _ = constraint.Parse(c.Text)
			case constraint.IsPlusBuild(c.Text):
				if line, err := constraint.Parse(c.Text); err == nil {
					if plusBuild == nil {
						plusBuild = line
					} else {
						plusBuild = &constraint.AndExpr{X: plusBuild, Y: line}
					}
				}
			}
		}
	}
	if expr == nil {
		expr = plusBuild
	}
	for _, tag := range fileNameTags(filepath.Base(sf.path)) {
		if expr == nil {
			expr = &constraint.TagExpr{Tag: tag}
		} else {
			expr = &constraint.AndExpr{X: expr, Y: &constraint.TagExpr{Tag: tag}}
		}
	}
	return expr
}

var (
	knownOS = strings.Fields("aix android darwin dragonfly freebsd hurd illumos ios js " +
		"linux nacl netbsd openbsd plan9 solaris wasip1 windows zos")
	knownArch = strings.Fields("386 amd64 amd64p32 arm armbe arm64 arm64be loong64 mips " +
		"mipsle mips64 mips64le mips64p32 mips64p32le ppc ppc64 ppc64le riscv riscv64 s390 " +
		"s390x sparc sparc64 wasm")
)

// fileNameTags returns the GOOS and GOARCH a file name like x_linux_amd64.go implies.
func fileNameTags(name string) []string {
	name = strings.TrimSuffix(strings.TrimSuffix(name, ".go"), "_test")
	parts := strings.Split(name, "_")
	if len(parts) < 2 {
		return nil
	}
	last := parts[len(parts)-1]
	if len(parts) >= 3 && contains(knownOS, parts[len(parts)-2]) && contains(knownArch, last) {
		return []string{parts[len(parts)-2], last}
	}
	if contains(knownOS, last) || contains(knownArch, last) {
		return []string{last}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// renderer copies type expressions from the handler's source and identity expressions from
// the directive into generated code, so that they read as the user wrote them. References
// to imported packages become qualified names, which the generated file imports under the
// names chooseImportNames picked; renamed parameters get their new names.
type renderer struct {
	fset    *token.FileSet
	src     []byte
	info    *types.Info
	pkg     *types.Package
	renamed map[types.Object]string
}

type replacement struct {
	start, end int
	code       jen.Code
}

// node renders one expression.
func (r *renderer) node(n ast.Node) jen.Code {
	file := r.fset.File(n.Pos())
	base := file.Base()
	var reps []replacement
	var visit func(n ast.Node) bool
	visit = func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			if x, ok := n.X.(*ast.Ident); ok {
				if pkgName, ok := r.info.Uses[x].(*types.PkgName); ok {
					reps = append(reps, replacement{int(n.Pos()) - base, int(n.End()) - base,
						jen.Qual(pkgName.Imported().Path(), n.Sel.Name)})
					return false
				}
			}
			ast.Inspect(n.X, visit)
			return false
		case *ast.Ident:
			obj := r.info.Uses[n]
			if obj == nil {
				return false
			}
			if name, ok := r.renamed[obj]; ok {
				reps = append(reps, replacement{int(n.Pos()) - base, int(n.End()) - base,
					jen.Id(name)})
			} else if obj.Pkg() != nil && obj.Pkg() != r.pkg && obj.Parent() == obj.Pkg().Scope() {
				reps = append(reps, replacement{int(n.Pos()) - base, int(n.End()) - base,
					jen.Qual(obj.Pkg().Path(), n.Name)})
			}
		}
		return true
	}
	ast.Inspect(n, visit)

	start, end := int(n.Pos())-base, int(n.End())-base
	s := jen.Null()
	at := start
	for _, rep := range reps {
		if rep.start > at {
			s.Add(jen.Id(string(r.src[at:rep.start])))
		}
		s.Add(rep.code)
		at = rep.end
	}
	if end > at {
		s.Add(jen.Id(string(r.src[at:end])))
	}
	return s
}

func (r *renderer) params(params []param) []jen.Code {
	codes := make([]jen.Code, len(params))
	for i, p := range params {
		codes[i] = jen.Id(p.name).Add(r.node(p.typ))
	}
	return codes
}

func (r *renderer) results(results []ast.Expr) jen.Code {
	switch len(results) {
	case 0:
		return jen.Null()
	case 1:
		return r.node(results[0])
	}
	codes := make([]jen.Code, len(results))
	for i, t := range results {
		codes[i] = r.node(t)
	}
	return jen.Parens(jen.List(codes...))
}

// fields renders type parameters: [T any, K comparable].
func (r *renderer) fields(fields []*ast.Field) []jen.Code {
	var codes []jen.Code
	for _, f := range fields {
		for _, n := range f.Names {
			codes = append(codes, jen.Id(n.Name).Add(r.node(f.Type)))
		}
	}
	return codes
}
