package generator

import (
	"cmp"
	"fmt"
	"go/token"
	"slices"
	"strings"
)

// Error is a problem found in the code limitgen reads, at the position where it was found.
type Error struct {
	Pos token.Position
	Msg string
}

// Error formats the problem as file:line:col: message.
func (e *Error) Error() string {
	if !e.Pos.IsValid() {
		return e.Msg
	}
	return fmt.Sprintf("%s: %s", e.Pos, e.Msg)
}

// ErrorList collects every problem of one run, so that a user sees all of them at once.
type ErrorList []*Error

// Add records a problem at pos.
func (l *ErrorList) Add(pos token.Position, format string, args ...any) {
	*l = append(*l, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// Err returns the list sorted by position as an error, or nil when it is empty.
func (l ErrorList) Err() error {
	if len(l) == 0 {
		return nil
	}
	sorted := slices.Clone(l)
	slices.SortStableFunc(sorted, func(a, b *Error) int {
		return cmp.Or(
			cmp.Compare(a.Pos.Filename, b.Pos.Filename),
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Column, b.Pos.Column),
		)
	})
	sorted = slices.CompactFunc(sorted, func(a, b *Error) bool { return a.Error() == b.Error() })
	return sorted
}

// Error lists every problem, one per line.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// filePos is the position of a whole file.
func filePos(path string) token.Position {
	return token.Position{Filename: path, Line: 1, Column: 1}
}
