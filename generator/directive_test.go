package generator

import (
	"go/token"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/limitgen/limitgen/runtime"
)

// FuzzParseDirective checks that no directive line makes the parser panic, and that every
// problem it reports points into the line it was given.
func FuzzParseDirective(f *testing.F) {
	for _, seed := range []string{
		"//limit:socketio",
		"//limit:socketio key=chat window=1m allowance=10",
		`//limit:socketio by="userOf(s)" on=drop`,
		`//limit:socketio by="a b" on=disconnect key="x"`,
		"//limit:socketio window=60 allowance=9007199254740991 on=reject",
		"//limit:socketio key= window= allowance=",
		`//limit:socketio key="unterminated`,
		"//limit:socketio alowance=3 key=a key=b novalue",
		"//limit:socket key=p",
		"//limit:socketio\tkey=tab\r",
		"//limit:socketio algo=gcra window=24h allowance=52000000 cost=3",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		pos := token.Position{Filename: "f.go", Line: 3, Column: 1, Offset: 10}
		var errs ErrorList
		d := ParseDirective(line, pos, &errs)
		for _, e := range errs {
			if e.Pos.Filename != "f.go" || e.Pos.Line != 3 || e.Pos.Column < 1 ||
				e.Pos.Column > len(line)+1 {
				t.Fatalf("problem %q at %v, outside the line %q", e.Msg, e.Pos, line)
			}
			if e.Msg == "" {
				t.Fatalf("problem without a message at %v for %q", e.Pos, line)
			}
		}
		if len(errs) == 0 && strings.HasPrefix(line, Prefix) {
			if d.Allowance < 1 || d.Window < MinWindow || d.Window > MaxWindow ||
				d.Pool == "" || len(d.Pool) > MaxPoolLen || !utf8.ValidString(d.Pool) {
				t.Fatalf("accepted %q as out-of-range directive %+v", line, d)
			}
			// What the generator accepts, the runtime must accept too: a rule it rejects
			// would deny every call of the handler.
			algorithms := map[string]runtime.Algorithm{"fixed": runtime.FixedWindow,
				"sliding": runtime.SlidingWindow, "gcra": runtime.GCRA}
			rule := runtime.Rule{Pool: d.Pool, Window: d.Window, Allowance: d.Allowance,
				Algorithm: algorithms[d.Algorithm], Cost: d.Cost}
			if err := rule.Validate(); err != nil {
				t.Fatalf("accepted %q, which the runtime rejects: %v", line, err)
			}
		}
	})
}

func TestParseDirective(t *testing.T) {
	pos := token.Position{Filename: "f.go", Line: 1, Column: 1}
	var errs ErrorList
	d := ParseDirective(`//limit:socketio key=chat window=1500ms allowance=7 algo=gcra cost=2 `+
		`by="userOf(s, 1)" on=busy`, pos, &errs)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	want := Directive{Pos: pos, Pool: "chat", Window: 1500 * 1e6, Allowance: 7, Algorithm: "gcra",
		Cost: 2, By: "userOf(s, 1)", byQuoted: `"userOf(s, 1)"`, On: Call, OnName: "busy"}
	d.ByPos, d.OnPos, d.CostPos, d.AlgoPos = token.Position{}, token.Position{}, token.Position{},
		token.Position{}
	if d != want {
		t.Fatalf("got %+v\nwant %+v", d, want)
	}

	d = ParseDirective("//limit:socketio", pos, &errs)
	if len(errs) > 0 || d.Pool != DefaultPool || d.Window != DefaultWindow ||
		d.Allowance != DefaultAllowance || d.On != Drop || d.Algorithm != "fixed" || d.Cost != 1 {
		t.Fatalf("defaults: %+v %v", d, errs)
	}
}
