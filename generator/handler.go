package generator

import (
	"fmt"
	"go/ast"
	"go/constant"
	"go/parser"
	"go/scanner"
	"go/token"
	"go/types"
	"maps"
	"strings"
	"unicode"
	"unicode/utf8"
)

// wrapperPlan is everything the emitter needs beyond the declaration itself: names chosen for
// the wrapper's variables, how to compute the identity and what to do over the limit.
type wrapperPlan struct {
	recvName string       // the receiver's name in the wrapper; empty for a function
	params   []param      // the handler's parameters, with the names the wrapper uses
	results  []ast.Expr   // the handler's result types, one per result
	resultTs []types.Type // and their types

	limiter, rule, decision string // names of the wrapper's own variables

	identity     identity
	disconnect   string // for on=disconnect: the call that disconnects, e.g. "s.Disconnect(true)"
	onCall       string // for on=NAME: the function, or the method on the receiver
	lastIsError  bool
	renamed      map[types.Object]string // parameters the wrapper renames
	taken        nameSet                 // names the wrapper's variables must not use
	typeParams   []*ast.Field            // of a generic function
	typeArgNames []string
}

type param struct {
	name     string
	typ      ast.Expr
	variadic bool
	obj      *types.Var
}

// identity is the expression a wrapper passes to the limiter as the caller's identity.
type identity struct {
	expr    ast.Expr    // the by= expression or the default receiver.ID()
	info    *types.Info // type information for expr
	src     []byte      // text expr was parsed from
	convert string      // "", "string", "int" or "uint": how to make a string of it
}

// findHandlers collects the directives of one file and checks each annotated declaration.
func findHandlers(sf sourceFile, errs *ErrorList) []*Handler {
	attached := map[*ast.CommentGroup]*ast.FuncDecl{}
	notFunc := map[*ast.CommentGroup]string{}
	for _, decl := range sf.ast.Decls {
		switch decl := decl.(type) {
		case *ast.FuncDecl:
			if decl.Doc != nil {
				attached[decl.Doc] = decl
			}
		case *ast.GenDecl:
			kind := map[token.Token]string{token.TYPE: "a type", token.VAR: "a variable",
				token.CONST: "a constant", token.IMPORT: "an import"}[decl.Tok]
			if decl.Doc != nil {
				notFunc[decl.Doc] = kind
			}
			for _, spec := range decl.Specs {
				var doc *ast.CommentGroup
				switch spec := spec.(type) {
				case *ast.TypeSpec:
					doc = spec.Doc
				case *ast.ValueSpec:
					doc = spec.Doc
				}
				if doc != nil {
					notFunc[doc] = kind
				}
			}
		}
	}

	var handlers []*Handler
	for _, group := range sf.ast.Comments {
		var directives []Directive
		failed := false
		for _, c := range group.List {
			if msg := Misspelling(c.Text); msg != "" {
				errs.Add(sf.fset.Position(c.Slash), "%s", msg)
				continue
			}
			if !IsDirective(c.Text) {
				continue
			}
			pos := sf.fset.Position(c.Slash)
			decl := attached[group]
			switch {
			case decl != nil:
				before := len(*errs)
				d := ParseDirective(c.Text, pos, errs)
				if len(*errs) > before {
					failed = true
				}
				directives = append(directives, d)
			case notFunc[group] != "":
				errs.Add(pos, "%s applies to functions and methods, not to %s",
					Prefix, notFunc[group])
			default:
				errs.Add(pos, "%s", detachedMessage(sf.fset, sf.ast, group))
			}
		}
		if len(directives) == 0 || failed {
			continue
		}
		merged, ok := mergeDirectives(directives, errs)
		if !ok {
			continue
		}
		if h := checkHandler(sf, attached[group], merged, directives, errs); h != nil {
			handlers = append(handlers, h)
		}
	}
	return handlers
}

// mergeDirectives combines the lines of a handler with several limits: each line is one rule,
// and by= and on=, which say whose calls are counted and what happens over any limit, may be
// given on any one line, or on several lines if they agree. A pool may appear once.
func mergeDirectives(directives []Directive, errs *ErrorList) (Directive, bool) {
	merged := directives[0]
	ok := true
	pools := map[string]Directive{merged.Pool: merged}
	for _, d := range directives[1:] {
		if first, seen := pools[d.Pool]; seen {
			errs.Add(d.Pos, "pool %q is limited twice on this handler (also at %s)", d.Pool,
				first.Pos)
			ok = false
		}
		pools[d.Pool] = d
		if d.By != "" {
			if merged.By != "" && merged.By != d.By {
				errs.Add(d.ByPos, "by=%s differs from by=%s at %s; a handler has one identity",
					d.By, merged.By, merged.ByPos)
				ok = false
			}
			merged.By, merged.ByPos = d.By, d.ByPos
		}
		if d.OnPos.IsValid() {
			if merged.OnPos.IsValid() && (merged.On != d.On || merged.OnName != d.OnName) {
				errs.Add(d.OnPos, "this on= differs from the one at %s; a handler does one "+
					"thing over its limits", merged.OnPos)
				ok = false
			}
			merged.On, merged.OnName, merged.OnPos = d.On, d.OnName, d.OnPos
		}
	}
	return merged, ok
}

// detachedMessage explains why a directive that is not a declaration's doc comment has no
// effect.
func detachedMessage(fset *token.FileSet, file *ast.File, group *ast.CommentGroup) string {
	end := fset.Position(group.End()).Line
	for _, decl := range file.Decls {
		if decl.Pos() < group.End() {
			if decl.End() > group.End() {
				return fmt.Sprintf("%s is inside a declaration; it applies only to function "+
					"and method declarations, not to function literals or statements", Prefix)
			}
			continue
		}
		if fd, ok := decl.(*ast.FuncDecl); ok && fset.Position(decl.Pos()).Line > end+1 {
			return fmt.Sprintf("%s is not attached to %s: remove the blank line between "+
				"them", Prefix, fd.Name.Name)
		}
		break
	}
	return fmt.Sprintf("%s must be in the doc comment of a function or method", Prefix)
}

// checkHandler checks a directive against its declaration's types and plans the wrapper.
func checkHandler(sf sourceFile, decl *ast.FuncDecl, d Directive, rules []Directive,
	errs *ErrorList) *Handler {

	info := sf.info
	fn, _ := info.Defs[decl.Name].(*types.Func)
	pos := sf.fset.Position(decl.Pos())
	if name := decl.Name.Name; (decl.Recv == nil && name == "init") || name == "_" {
		errs.Add(d.Pos, "%s cannot be called by name, so no wrapper can call it: limit a "+
			"named handler instead", name)
		return nil
	}
	if fn == nil {
		errs.Add(pos, "cannot find the type of %s: fix the errors above first", decl.Name.Name)
		return nil
	}
	if decl.Body == nil {
		errs.Add(pos, "%s has no body; a limited handler must be written in Go",
			decl.Name.Name)
		return nil
	}
	sig := fn.Type().(*types.Signature)
	if other := declaredWrapper(sf, fn, sig); other != nil {
		errs.Add(pos, "%s is already declared at %s; limitgen generates it for %s: rename one",
			other.Name(), sf.fset.Position(other.Pos()), decl.Name.Name)
		return nil
	}
	h := &Handler{Directive: d, Rules: rules, Pos: pos, File: sf.path, Name: decl.Name.Name,
		Display: decl.Name.Name, decl: decl, sig: sig, sourceInfo: info}

	// The wrapper's variables also stay clear of the names its file may import.
	taken := takenNames(sf, decl)
	for _, name := range []string{"runtime", "time", "strconv"} {
		taken[name] = true
	}
	p := &h.plan
	p.renamed = map[types.Object]string{}
	if recv := sig.Recv(); recv != nil {
		h.Display = fmt.Sprintf("(%s).%s", types.TypeString(recv.Type(), func(*types.Package) string {
			return ""
		}), h.Name)
		p.recvName = recv.Name()
		if p.recvName == "" || p.recvName == "_" {
			p.recvName = taken.fresh(receiverName(recv.Type()))
			p.renamed[recv] = p.recvName
		}
	}
	if decl.Type.TypeParams != nil {
		p.typeParams = decl.Type.TypeParams.List
		for _, f := range decl.Type.TypeParams.List {
			for _, n := range f.Names {
				p.typeArgNames = append(p.typeArgNames, n.Name)
			}
		}
	}

	// The wrapper's body calls the handler (or the on= function) by its package-level name,
	// may call strconv and spells the result types for zero values; a parameter of the same
	// name as any of them would hide it there, so such a parameter is renamed.
	hidden := map[string]bool{"strconv": true}
	if sig.Recv() == nil {
		hidden[h.Name] = true
		if d.On == Call {
			hidden[d.OnName] = true
		}
	}
	if decl.Type.Results != nil {
		ast.Inspect(decl.Type.Results, func(n ast.Node) bool {
			if id, ok := n.(*ast.Ident); ok {
				hidden[id.Name] = true
			}
			return true
		})
	}
	i := 0
	for _, field := range decl.Type.Params.List {
		_, variadic := field.Type.(*ast.Ellipsis)
		for range max(1, len(field.Names)) {
			obj := sig.Params().At(i)
			name := obj.Name()
			if name == "" || name == "_" || hidden[name] {
				name = taken.fresh(fmt.Sprintf("p%d", i))
				p.renamed[obj] = name
			}
			p.params = append(p.params, param{name: name, typ: field.Type, variadic: variadic,
				obj: obj})
			i++
		}
	}
	if decl.Type.Results != nil {
		for _, field := range decl.Type.Results.List {
			for range max(1, len(field.Names)) {
				p.results = append(p.results, field.Type)
				p.resultTs = append(p.resultTs, sig.Results().At(len(p.resultTs)).Type())
			}
		}
	}
	if n := sig.Results().Len(); n > 0 {
		p.lastIsError = types.Identical(sig.Results().At(n-1).Type(),
			types.Universe.Lookup("error").Type())
	}

	ruleName := "rule"
	if len(rules) > 1 {
		ruleName = "rules"
	}
	p.limiter, p.rule, p.decision = taken.fresh("l"), taken.fresh(ruleName), taken.fresh("d")
	p.taken = taken

	var identityRoot *types.Var
	if d.By != "" {
		identityRoot = checkIdentityExpr(sf, h, errs)
	} else {
		identityRoot = defaultIdentity(sf, h, errs)
	}
	if h.plan.identity.expr == nil {
		return nil
	}
	h.Identity = identityText(h)

	switch d.On {
	case Disconnect:
		if !planDisconnect(sf, h, identityRoot) {
			errs.Add(d.OnPos, "on=disconnect needs the identity, the receiver or a parameter "+
				"to have a method Disconnect(bool) or Close() error; %s has none", h.Display)
			return nil
		}
	case Call:
		if !checkOnCall(sf, h, errs) {
			return nil
		}
	}
	return h
}

// takenNames holds every name a wrapper's own variables must not use: the package's
// declarations, the file's imports and every name in the handler's signature.
type nameSet map[string]bool

func takenNames(sf sourceFile, decl *ast.FuncDecl) nameSet {
	taken := nameSet{}
	for _, name := range sf.wide.Scope().Names() {
		taken[name] = true
	}
	maps.Copy(taken, sf.elsewhere)
	for _, imp := range sf.ast.Imports {
		if imp.Name != nil {
			taken[imp.Name.Name] = true
		} else if obj, ok := sf.info.Implicits[imp].(*types.PkgName); ok {
			taken[obj.Name()] = true
		}
	}
	ast.Inspect(decl.Type, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok {
			taken[id.Name] = true
		}
		return true
	})
	if decl.Recv != nil {
		ast.Inspect(decl.Recv, func(n ast.Node) bool {
			if id, ok := n.(*ast.Ident); ok {
				taken[id.Name] = true
			}
			return true
		})
	}
	return taken
}

// fresh returns base, or base with the smallest number appended, that is not taken yet, and
// takes it.
func (s nameSet) fresh(base string) string {
	name := base
	for i := 2; s[name]; i++ {
		name = fmt.Sprintf("%s%d", base, i)
	}
	s[name] = true
	return name
}

// receiverName makes a receiver name from its type: *Client -> c.
func receiverName(t types.Type) string {
	if p, ok := t.(*types.Pointer); ok {
		t = p.Elem()
	}
	if n, ok := t.(*types.Named); ok {
		r, _ := utf8.DecodeRuneInString(n.Obj().Name())
		if unicode.IsLetter(r) {
			return string(unicode.ToLower(r))
		}
	}
	return "recv"
}

// checkIdentityExpr parses and type-checks the by= expression as if it were written at the
// top of the handler's body, and returns the parameter or receiver it starts from, if any.
func checkIdentityExpr(sf sourceFile, h *Handler, errs *ErrorList) *types.Var {
	d := h.Directive
	offsetPos := func(offset int) token.Position {
		p := d.ByPos
		p.Column += d.byColumn(offset)
		return p
	}

	// The expression is parsed as a file of its own in the package's file set, as CheckExpr
	// needs; an offset in that file is an offset in the directive's value.
	expr, err := parser.ParseExprFrom(sf.fset, "by="+d.By, d.By, 0)
	if err != nil {
		p, msg := d.ByPos, err.Error()
		if list, ok := err.(scanner.ErrorList); ok && len(list) > 0 {
			p, msg = offsetPos(list[0].Pos.Offset), list[0].Msg
		}
		errs.Add(p, "by=%s is not a Go expression: %s", d.By, msg)
		return nil
	}
	info := &types.Info{
		Types:      map[ast.Expr]types.TypeAndValue{},
		Uses:       map[*ast.Ident]types.Object{},
		Selections: map[*ast.SelectorExpr]*types.Selection{},
		Instances:  map[*ast.Ident]types.Instance{},
	}
	if err := types.CheckExpr(sf.fset, sf.types, h.decl.Body.Lbrace, expr, info); err != nil {
		p, msg := d.ByPos, err.Error()
		if te, ok := err.(types.Error); ok {
			p, msg = offsetPos(sf.fset.Position(te.Pos).Offset), te.Msg
		}
		errs.Add(p, "by=%s: %s", d.By, msg)
		return nil
	}
	tv := info.Types[expr]
	if !tv.IsValue() {
		errs.Add(d.ByPos, "by=%s is a type, not a value: give an expression over the "+
			"handler's parameters, e.g. by=s.ID()", d.By)
		return nil
	}
	if tv.Value != nil && tv.Value.Kind() == constant.Int {
		if _, exact := constant.Int64Val(tv.Value); !exact && isUntyped(tv.Type) {
			errs.Add(d.ByPos, "by=%s overflows int64", d.By)
			return nil
		}
	}
	// root is the first parameter or receiver the expression uses: the one on=disconnect
	// looks at first. A result has no value yet when the wrapper runs.
	var root, result *types.Var
	ast.Inspect(expr, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok {
			if v, ok := info.Uses[id].(*types.Var); ok {
				switch {
				case isResult(h.sig, v) && result == nil:
					result = v
				case isParamOrReceiver(h.sig, v) && root == nil:
					root = v
				}
			}
		}
		return true
	})
	if result != nil {
		errs.Add(d.ByPos, "by=%s uses the result %s, which has no value before the handler "+
			"runs: count by a parameter or the receiver", d.By, result.Name())
		return nil
	}
	t := tv.Type
	convert, ok := identityConversion(t)
	if !ok {
		errs.Add(d.ByPos, "by=%s has type %s; an identity must be a string, an integer or a "+
			"type whose underlying type is string", d.By, t)
		return nil
	}
	h.plan.identity = identity{expr: expr, info: info, src: []byte(d.By), convert: convert}
	return root
}

func isResult(sig *types.Signature, v *types.Var) bool {
	for i := range sig.Results().Len() {
		if sig.Results().At(i) == v {
			return true
		}
	}
	return false
}

func isUntyped(t types.Type) bool {
	basic, ok := t.(*types.Basic)
	return ok && basic.Info()&types.IsUntyped != 0
}

func isParamOrReceiver(sig *types.Signature, v *types.Var) bool {
	if sig.Recv() == v {
		return true
	}
	for i := range sig.Params().Len() {
		if sig.Params().At(i) == v {
			return true
		}
	}
	return false
}

// identityConversion says how a wrapper turns an identity of type t into a string.
func identityConversion(t types.Type) (string, bool) {
	if tp, ok := t.(*types.TypeParam); ok {
		switch {
		case typeSetAll(tp, types.IsString):
			return "string", true
		case typeSetAll(tp, types.IsInteger):
			return "int", true // int64(x) converts every integer type
		}
		return "", false
	}
	basic, ok := t.Underlying().(*types.Basic)
	if !ok {
		return "", false
	}
	switch {
	case basic.Info()&types.IsString != 0:
		if types.Identical(t, types.Typ[types.String]) || basic.Kind() == types.UntypedString {
			return "", true
		}
		return "string", true
	case basic.Info()&types.IsUnsigned != 0:
		return "uint", true
	case basic.Info()&types.IsInteger != 0:
		return "int", true
	}
	return "", false
}

// defaultIdentity finds the first receiver or parameter with a method ID() or Id() returning
// a string kind, and plans the identity as a call of it.
func defaultIdentity(sf sourceFile, h *Handler, errs *ErrorList) *types.Var {
	candidates := []*types.Var{}
	if recv := h.sig.Recv(); recv != nil {
		candidates = append(candidates, recv)
	}
	for i := range h.sig.Params().Len() {
		candidates = append(candidates, h.sig.Params().At(i))
	}
	for _, v := range candidates {
		for _, method := range []string{"ID", "Id"} {
			obj, _, _ := types.LookupFieldOrMethod(v.Type(), true, sf.types, method)
			fn, ok := obj.(*types.Func)
			if !ok {
				continue
			}
			sig := fn.Type().(*types.Signature)
			if sig.Params().Len() != 0 || sig.Results().Len() != 1 {
				continue
			}
			convert, ok := identityConversion(sig.Results().At(0).Type())
			if !ok || convert == "int" || convert == "uint" {
				continue
			}
			name := h.plan.nameOf(v)
			src := []byte(name + "." + method + "()")
			expr, _ := parser.ParseExpr(string(src))
			h.plan.identity = identity{expr: expr, src: src, convert: convert}
			return v
		}
	}
	if hasInvalidType(h.sig) {
		errs.Add(h.Directive.Pos, "%s: the types of its parameters did not load, so no ID() "+
			"method can be found; check that the packages they come from compile and are in "+
			"go.mod and go.sum (go build ./..., go mod tidy)", h.Display)
		return nil
	}
	errs.Add(h.Directive.Pos, "%s has no receiver or parameter with a method ID() or Id() "+
		"returning a string: say whose calls are counted with by=, e.g. by=s.ID()", h.Display)
	return nil
}

// nameOf is the name the wrapper uses for a parameter or the receiver.
func (p *wrapperPlan) nameOf(v *types.Var) string {
	if name, ok := p.renamed[v]; ok {
		return name
	}
	return v.Name()
}

// planDisconnect finds what on=disconnect calls: the identity's own value first, then the
// receiver, then the parameters in order.
func planDisconnect(sf sourceFile, h *Handler, root *types.Var) bool {
	candidates := []*types.Var{}
	if root != nil {
		candidates = append(candidates, root)
	}
	if recv := h.sig.Recv(); recv != nil {
		candidates = append(candidates, recv)
	}
	for i := range h.sig.Params().Len() {
		candidates = append(candidates, h.sig.Params().At(i))
	}
	for _, v := range candidates {
		obj, _, _ := types.LookupFieldOrMethod(v.Type(), true, sf.types, "Disconnect")
		if fn, ok := obj.(*types.Func); ok {
			params := fn.Type().(*types.Signature).Params()
			if params.Len() == 1 && types.Identical(params.At(0).Type().Underlying(),
				types.Typ[types.Bool]) {
				h.plan.disconnect = h.plan.nameOf(v) + ".Disconnect(false)"
				return true
			}
		}
		obj, _, _ = types.LookupFieldOrMethod(v.Type(), true, sf.types, "Close")
		if fn, ok := obj.(*types.Func); ok {
			sig := fn.Type().(*types.Signature)
			if sig.Params().Len() == 0 && sig.Results().Len() == 1 &&
				types.Identical(sig.Results().At(0).Type(), types.Universe.Lookup("error").Type()) {
				h.plan.disconnect = "_ = " + h.plan.nameOf(v) + ".Close()"
				return true
			}
		}
	}
	return false
}

// checkOnCall checks that the on= function or method takes a runtime.Decision followed by
// the handler's parameters and returns the handler's results.
func checkOnCall(sf sourceFile, h *Handler, errs *ErrorList) bool {
	d := h.Directive
	var fn *types.Func
	if recv := h.sig.Recv(); recv != nil {
		obj, _, _ := types.LookupFieldOrMethod(recv.Type(), true, sf.types, d.OnName)
		fn, _ = obj.(*types.Func)
		if fn == nil {
			errs.Add(d.OnPos, "on=%s: %s has no method %s", d.OnName,
				types.TypeString(recv.Type(), types.RelativeTo(sf.types)), d.OnName)
			return false
		}
		h.plan.onCall = h.plan.recvName + "." + d.OnName
	} else {
		fn, _ = sf.types.Scope().Lookup(d.OnName).(*types.Func)
		if fn == nil {
			errs.Add(d.OnPos, "on=%s: no function %s in package %s", d.OnName, d.OnName,
				sf.types.Name())
			return false
		}
		h.plan.onCall = d.OnName
	}

	got := fn.Type().(*types.Signature)
	if tps := got.TypeParams(); tps.Len() > 0 {
		handlerTPs := h.sig.TypeParams()
		if handlerTPs.Len() != tps.Len() {
			errs.Add(d.OnPos, "on=%s has %d type parameters; %s has %d", d.OnName, tps.Len(),
				h.Display, handlerTPs.Len())
			return false
		}
		args := make([]types.Type, handlerTPs.Len())
		for i := range args {
			args[i] = handlerTPs.At(i)
		}
		inst, err := types.Instantiate(nil, got, args, true)
		if err != nil {
			errs.Add(d.OnPos, "on=%s: %v", d.OnName, err)
			return false
		}
		got = inst.(*types.Signature)
	}

	want := fmt.Sprintf("func(%s.Decision, %s) %s", "runtime",
		strings.TrimSuffix(strings.TrimPrefix(tupleString(h.sig.Params(), h.sig.Variadic(),
			sf.types), "("), ")"), resultString(h.sig.Results(), sf.types))
	want = strings.Replace(strings.TrimSpace(want), ", )", ")", 1)
	ok := got.Params().Len() == h.sig.Params().Len()+1 && got.Variadic() == h.sig.Variadic() &&
		types.Identical(got.Results(), h.sig.Results())
	if ok {
		first, isNamed := got.Params().At(0).Type().(*types.Named)
		ok = isNamed && first.Obj().Pkg() != nil && first.Obj().Pkg().Path() == RuntimePath &&
			first.Obj().Name() == "Decision"
	}
	for i := 0; ok && i < h.sig.Params().Len(); i++ {
		ok = types.Identical(got.Params().At(i+1).Type(), h.sig.Params().At(i).Type())
	}
	if !ok && hasInvalidType(got) {
		errs.Add(d.OnPos, "on=%s: the types of its parameters did not load; check that the "+
			"packages it uses are in go.mod and go.sum (go mod tidy)", d.OnName)
		return false
	}
	if !ok {
		gotText := types.TypeString(got, types.RelativeTo(sf.types))
		errs.Add(d.OnPos, "on=%s has type %s; it must be %s", d.OnName, gotText, want)
		return false
	}
	return true
}

func tupleString(t *types.Tuple, variadic bool, pkg *types.Package) string {
	s := types.TypeString(types.NewSignatureType(nil, nil, nil, t, nil, variadic),
		types.RelativeTo(pkg))
	return strings.TrimPrefix(s, "func")
}

func resultString(t *types.Tuple, pkg *types.Package) string {
	s := types.TypeString(types.NewSignatureType(nil, nil, nil, nil, t, false),
		types.RelativeTo(pkg))
	return strings.TrimSpace(strings.TrimPrefix(s, "func()"))
}

// identityText is the identity as a person reads it in a doc comment.
func identityText(h *Handler) string {
	return string(h.plan.identity.src)
}

// typeSetAll reports whether every type in tp's type set has an underlying basic type
// with all of info's bits (types.IsString, types.IsInteger): a set that is not known to
// be made of such types, as any's, does not qualify.
func typeSetAll(tp *types.TypeParam, info types.BasicInfo) bool {
	iface, ok := tp.Constraint().Underlying().(*types.Interface)
	if !ok {
		return false
	}
	is := func(t types.Type) bool {
		b, ok := t.Underlying().(*types.Basic)
		return ok && b.Info()&info == info
	}
	found := false
	for i := range iface.NumEmbeddeds() {
		switch e := iface.EmbeddedType(i).(type) {
		case *types.Union:
			for j := range e.Len() {
				if !is(e.Term(j).Type()) {
					return false
				}
			}
			found = true
		default:
			if !is(e) {
				return false
			}
			found = true
		}
	}
	return found
}

// declaredWrapper finds a declaration, other than a generated one, of the name the handler's
// wrapper takes.
func declaredWrapper(sf sourceFile, fn *types.Func, sig *types.Signature) types.Object {
	name := fn.Name() + "Limited"
	var obj types.Object
	if recv := sig.Recv(); recv != nil {
		obj, _, _ = types.LookupFieldOrMethod(wideType(sf, recv.Type()), true, sf.wide, name)
	} else {
		obj = sf.wide.Scope().Lookup(name)
	}
	if obj == nil || !obj.Pos().IsValid() {
		return nil
	}
	if sf.fset.Position(obj.Pos()).Filename == outputPath(sf.path) {
		return nil // the wrapper itself, seen by go vet
	}
	return obj
}

// wideType is t as declared in sf.wide, whose method set also has the methods that
// _test.go files declare; t itself when it is not a type of the package.
func wideType(sf sourceFile, t types.Type) types.Type {
	ptr, isPtr := t.(*types.Pointer)
	if isPtr {
		t = ptr.Elem()
	}
	named, ok := t.(*types.Named)
	if !ok || named.Obj().Pkg() != sf.types || sf.wide == sf.types {
		return t
	}
	obj, _ := sf.wide.Scope().Lookup(named.Obj().Name()).(*types.TypeName)
	if obj == nil {
		return t
	}
	wide, ok := obj.Type().(*types.Named)
	if !ok {
		return t
	}
	var out types.Type = wide
	if isPtr {
		out = types.NewPointer(wide)
	}
	return out
}

// hasInvalidType reports whether the receiver or a parameter of sig has a type that did not
// load, as when its package is missing from go.sum or does not compile.
func hasInvalidType(sig *types.Signature) bool {
	vars := []*types.Var{}
	if sig.Recv() != nil {
		vars = append(vars, sig.Recv())
	}
	for i := range sig.Params().Len() {
		vars = append(vars, sig.Params().At(i))
	}
	for _, v := range vars {
		t := v.Type()
		if ptr, ok := t.(*types.Pointer); ok {
			t = ptr.Elem()
		}
		if t == types.Typ[types.Invalid] {
			return true
		}
	}
	return false
}
