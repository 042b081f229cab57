package main

import (
	"testing"

	"github.com/limitgen/limitgen/generator"
)

// TestExamplesInSync fails when a committed generated file in examples/ differs from what
// limitgen generates now: the examples are what users copy, so they must be current.
func TestExamplesInSync(t *testing.T) {
	for _, dir := range []string{"../../examples/chat", "../../examples/legacy"} {
		plan, err := generator.Generate(generator.Config{Dir: dir}, "./...")
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		diff, err := plan.Check()
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if len(diff) > 0 {
			t.Errorf("%s: generated files are out of date; run go generate there:\n%s", dir, diff)
		}
		if len(plan.Handlers) == 0 {
			t.Errorf("%s: no annotated handlers found", dir)
		}
	}
}
