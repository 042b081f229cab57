package generator

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/rogpeppe/go-internal/diff"
)

// Plan is what one run would write: the generated files and the stale ones to remove.
type Plan struct {
	Handlers []*Handler
	Files    []File
	Stale    []string // generated files whose source no longer has directives

	// Bypasses are references to annotated handlers, outside tests, that run them without
	// their limit: most often a handler registered directly, socket.On("chat", c.Chat).
	Bypasses ErrorList
}

// File is one generated file.
type File struct {
	Path    string // where it is written: F_limited.go
	Source  string // the file its handlers are declared in: F.go
	Content []byte
}

// Summary counts what Apply did.
type Summary struct {
	Handlers, Written, Unchanged, Removed int
}

// Apply writes the files whose content changed and removes stale ones. Before it writes
// anything it checks every target: a file that exists without limitgen's header is a user's
// file, and Apply then reports all such files and writes nothing. Each file is written to a
// temporary file in its directory and renamed into place, so a failure never leaves a
// half-written file.
func (p *Plan) Apply() (Summary, error) {
	s := Summary{Handlers: len(p.Handlers)}
	var errs ErrorList
	changed := []File{}
	for _, f := range p.Files {
		old, err := os.ReadFile(f.Path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			changed = append(changed, f)
		case err != nil:
			return s, fmt.Errorf("reading %s: %w", f.Path, err)
		case !IsGenerated(old):
			errs.addUserFile(f)
		case bytes.Equal(old, f.Content):
			s.Unchanged++
		default:
			changed = append(changed, f)
		}
	}
	if err := errs.Err(); err != nil {
		return s, err
	}

	for _, f := range changed {
		if err := writeFile(f.Path, f.Content); err != nil {
			return s, err
		}
		s.Written++
	}
	for _, path := range p.Stale {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return s, fmt.Errorf("removing stale %s: %w", path, err)
		}
		s.Removed++
	}
	return s, nil
}

// writeFile replaces path with content through a temporary file in the same directory.
func writeFile(path string, content []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".limitgen-*.tmp")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// Check compares the plan with the files on disk and writes nothing. It returns a unified
// diff for every generated file that is missing, out of date or stale (empty when all are in
// sync), and an error for a target file limitgen did not write.
func (p *Plan) Check() ([]byte, error) {
	var out bytes.Buffer
	var errs ErrorList
	for _, f := range p.Files {
		old, err := os.ReadFile(f.Path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			out.Write(diff.Diff("/dev/null", nil, f.Path, f.Content))
		case err != nil:
			return nil, fmt.Errorf("reading %s: %w", f.Path, err)
		case !IsGenerated(old):
			errs.addUserFile(f)
		default:
			out.Write(diff.Diff(f.Path, old, f.Path, f.Content))
		}
	}
	for _, path := range p.Stale {
		old, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		out.Write(diff.Diff(path, old, "/dev/null", nil))
	}
	return out.Bytes(), errs.Err()
}

// addUserFile reports a file in the way of a generated one that a person wrote.
func (l *ErrorList) addUserFile(f File) {
	l.Add(filePos(f.Path), "%s exists and was not written by limitgen; rename it or move it "+
		"away so limitgen can write the wrappers for %s", filepath.Base(f.Path),
		filepath.Base(f.Source))
}
