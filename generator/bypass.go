package generator

import (
	"fmt"
	"go/ast"
	"go/types"
	"path/filepath"
	"strings"
)

// handlerKey names a handler the same way in every variant of its package (a package loaded
// with its tests is type-checked again, with objects of its own).
func handlerKey(fn *types.Func) string {
	return fn.Origin().FullName()
}

// findBypasses reports every reference to an annotated handler in non-test code other than
// the handler's own declaration: such a reference (socket.On("chat", c.Chat)) runs the
// handler without its limit. Generated files are not read, so the wrappers' own calls never
// count.
func findBypasses(files []sourceFile, handlers []*Handler) ErrorList {
	byKey := map[string]*Handler{}
	for _, h := range handlers {
		if fn, ok := h.sourceInfo.Defs[h.decl.Name].(*types.Func); ok {
			byKey[handlerKey(fn)] = h
		}
	}
	if len(byKey) == 0 {
		return nil
	}

	var found ErrorList
	for _, sf := range files {
		if strings.HasSuffix(sf.path, "_test.go") {
			continue
		}
		ast.Inspect(sf.ast, func(n ast.Node) bool {
			id, ok := n.(*ast.Ident)
			if !ok {
				return true
			}
			fn, ok := sf.info.Uses[id].(*types.Func)
			if !ok {
				return true
			}
			h := byKey[handlerKey(fn)]
			if h == nil {
				return true
			}
			pos := sf.fset.Position(id.Pos())
			if pos.Filename == h.File && id.Pos() >= h.decl.Pos() && id.Pos() < h.decl.End() {
				return true // the handler calling itself
			}
			found.Add(pos, "%s", bypassMessage(h, h.Directive.Pos.String()))
			return true
		})
	}
	return found
}

// bypassMessage says that h runs without its limit; at is where its directive is.
func bypassMessage(h *Handler, at string) string {
	return fmt.Sprintf("%s runs here without its limit (%s at %s); use %sLimited(limiter) "+
		"instead", h.Display, Prefix, at, h.Name)
}

// Declaration is the name in the handler's declaration, whose object is the handler.
func (h *Handler) Declaration() *ast.Ident { return h.decl.Name }

// BypassMessage is what a use of the handler without its limit is reported with, for a
// report whose reader may not share limitgen's working directory: the directive's position
// names only its file.
func (h *Handler) BypassMessage() string {
	p := h.Directive.Pos
	return bypassMessage(h, fmt.Sprintf("%s:%d:%d", filepath.Base(p.Filename), p.Line, p.Column))
}
