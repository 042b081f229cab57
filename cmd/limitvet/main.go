// Command limitvet runs limitgen's checks as a go vet tool: malformed //limit:socketio
// directives, generated files that are missing, out of date or stale, and annotated handlers
// used without their limit.
//
//	go install github.com/limitgen/limitgen/cmd/limitvet
//	go vet -vettool=$(command -v limitvet) ./...
package main

import (
	"golang.org/x/tools/go/analysis/singlechecker"

	"github.com/limitgen/limitgen/analyzer"
)

func main() { singlechecker.Main(analyzer.Analyzer) }
