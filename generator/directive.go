package generator

import (
	"fmt"
	"go/token"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/limitgen/limitgen/runtime"
)

// Prefix starts every directive line.
const Prefix = "//limit:socketio"

// Defaults of a directive's parameters: two calls per second in the pool "socketio".
const (
	DefaultPool      = "socketio"
	DefaultWindow    = time.Second
	DefaultAllowance = 2
)

// Limits on directive values. MaxAllowance keeps counts exact in Redis, whose Lua numbers
// are doubles; MaxWindow keeps a window, in milliseconds, far inside what Redis and
// time.Duration represent.
const (
	MaxPoolLen   = runtime.MaxPoolLen
	MinWindow    = time.Millisecond
	MaxWindow    = 366 * 24 * time.Hour
	MaxAllowance = 1<<53 - 1
)

// maxGCRAProduct bounds allowance × window in ms for gcra, as runtime.Rule.Validate does.
const maxGCRAProduct = 1<<52 - 1

// Action is what a wrapper does with a call over the limit.
type Action int

const (
	// Drop skips the handler and returns zero values (and a *runtime.LimitError in a last
	// error result).
	Drop Action = iota
	// Disconnect drops the call and disconnects the caller.
	Disconnect
	// Call calls the function or method named in the directive instead of the handler.
	Call
)

// Directive is one //limit:socketio line, parsed and checked on its own. What needs type
// information (the identity expression, the on= function) is checked by the generator.
type Directive struct {
	Pos       token.Position // where the directive's comment starts
	Pool      string
	Window    time.Duration
	Allowance int64
	Algorithm string // fixed, sliding or gcra
	AlgoPos   token.Position
	Cost      int64 // what one call consumes
	CostPos   token.Position
	By        string         // Go expression for the identity; empty means the default
	ByPos     token.Position // where By's value starts
	byQuoted  string         // By as written when it was quoted, for positions inside it
	On        Action
	OnName    string // for Call: the function or method to call
	OnPos     token.Position
}

var parameterNames = []string{"key", "window", "allowance", "algo", "cost", "by", "on"}

// Algorithms are the values algo= takes, with the name of the runtime constant for each.
var Algorithms = map[string]string{"fixed": "FixedWindow", "sliding": "SlidingWindow",
	"gcra": "GCRA"}

// IsDirective reports whether a comment line is meant as a limitgen directive, including
// misspelled ones such as //limit:socket, so that they are reported instead of ignored.
func IsDirective(text string) bool {
	return strings.HasPrefix(text, "//limit:")
}

// Misspelling says what is wrong with a comment that looks meant as a directive but that
// would be read as an ordinary comment: a space after // ("// limit:socketio"), a block
// comment ("/*limit:socketio*/") or a misspelled name ("//limits:socketio"). It returns ""
// for every other comment, directives included.
func Misspelling(text string) string {
	if body, ok := strings.CutPrefix(text, "/*"); ok {
		if strings.HasPrefix(strings.ToLower(strings.TrimLeft(body, " \t\r\n")), "limit:") {
			return fmt.Sprintf("a block comment is not a directive: write %s as a line "+
				"comment", Prefix)
		}
		return ""
	}
	rest, ok := strings.CutPrefix(text, "//")
	if !ok || strings.HasPrefix(rest, "limit:") {
		return ""
	}
	if trimmed := strings.TrimLeft(rest, " \t"); len(trimmed) < len(rest) {
		if strings.HasPrefix(trimmed, Prefix[2:]) {
			return fmt.Sprintf("%q is an ordinary comment: write %s with no space after //",
				strings.TrimSpace(text), Prefix)
		}
		return ""
	}
	// //limits:socketio, //limt:socketio, //Limit:socketio and the like.
	name, arg, ok := strings.Cut(rest, ":")
	misspelled := ok && !strings.ContainsAny(name, " \t") &&
		editDistance(strings.ToLower(name), "limit") <= 1
	if misspelled && strings.HasPrefix(strings.ToLower(arg), "socket") {
		word, _, _ := strings.Cut(text, " ")
		return fmt.Sprintf("unknown directive %q; limitgen reads %s", word, Prefix)
	}
	return ""
}

// ParseDirective parses the comment line text found at pos. Every problem is added to errs
// with the position of the offending argument; the returned directive is only meaningful
// when no problem was added.
func ParseDirective(text string, pos token.Position, errs *ErrorList) Directive {
	d := Directive{Pos: pos, Pool: DefaultPool, Window: DefaultWindow, Allowance: DefaultAllowance,
		Algorithm: "fixed", Cost: 1}
	before := len(*errs)
	at := func(offset int) token.Position {
		p := pos
		p.Column += offset
		p.Offset += offset
		return p
	}

	text = strings.TrimRight(text, " \t\r")
	rest, ok := strings.CutPrefix(text, Prefix)
	if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '\t') {
		name, _, _ := strings.Cut(text, " ")
		errs.Add(pos, "unknown directive %q; limitgen reads %s", name, Prefix)
		return d
	}

	seen := map[string]bool{}
	offset := len(Prefix)
	for {
		skipped := len(rest) - len(strings.TrimLeft(rest, " \t"))
		rest = rest[skipped:]
		offset += skipped
		if rest == "" {
			break
		}

		argStart := offset
		if strings.HasPrefix(rest, "//") {
			errs.Add(at(argStart), "a directive line cannot end in a comment: put %q on a "+
				"line of its own", rest)
			break
		}
		name, value, quoted, valueOffset, n, err := nextArgument(rest)
		rest = rest[n:]
		offset += n
		if err != nil {
			errs.Add(at(argStart), "%v", err)
			continue
		}
		if seen[name] {
			errs.Add(at(argStart), "parameter %q is given twice", name)
			continue
		}
		seen[name] = true

		valuePos := at(argStart + valueOffset)
		if err := d.set(name, value, valuePos); err != nil {
			errs.Add(valuePos, "%v", err)
		}
		if name == "by" {
			d.byQuoted = quoted
		}
	}
	if d.Algorithm == "gcra" && d.Allowance > maxGCRAProduct/d.Window.Milliseconds() {
		errs.Add(d.AlgoPos, "algo=gcra needs allowance x window in milliseconds below 2^52 to "+
			"count exactly in Redis; %d x %d is not: shorten the window or lower the allowance",
			d.Allowance, d.Window.Milliseconds())
	}
	if d.Cost > d.Allowance {
		errs.Add(d.CostPos, "cost=%d is more than allowance=%d: such a call could never run",
			d.Cost, d.Allowance)
	}
	if len(*errs) == before {
		// The checks above say what is wrong where it is; the runtime has the last word,
		// so that no wrapper is ever generated with a rule it would deny every call of.
		if err := d.runtimeRule().Validate(); err != nil {
			errs.Add(pos, "%v", err)
		}
	}
	return d
}

// runtimeRule is the rule the generated wrapper builds from d.
func (d Directive) runtimeRule() *runtime.Rule {
	algorithms := map[string]runtime.Algorithm{"fixed": runtime.FixedWindow,
		"sliding": runtime.SlidingWindow, "gcra": runtime.GCRA}
	return &runtime.Rule{Pool: d.Pool, Window: d.Window, Allowance: d.Allowance,
		Algorithm: algorithms[d.Algorithm], Cost: d.Cost}
}

// byColumn is how many columns after ByPos the byte at offset of By was written: offset
// itself unless By was quoted, when the quote and escapes move it.
func (d *Directive) byColumn(offset int) int {
	if d.byQuoted == "" {
		return offset
	}
	raw := d.byQuoted[1 : len(d.byQuoted)-1]
	column, produced := 1, 0 // past the opening quote
	for produced < offset && raw != "" {
		r, multibyte, tail, err := strconv.UnquoteChar(raw, '"')
		if err != nil {
			break
		}
		column += len(raw) - len(tail)
		produced++ // an ASCII character, or a byte written as \x or in octal
		if multibyte {
			produced += utf8.RuneLen(r) - 1
		}
		raw = tail
	}
	return column
}

// nextArgument reads one name=value argument from the start of s. It returns the value
// unquoted, the offset of the value within the argument and the number of bytes consumed.
func nextArgument(s string) (name, value, quoted string, valueOffset, n int, err error) {
	end := strings.IndexAny(s, " \t")
	if end < 0 {
		end = len(s)
	}
	eq := strings.IndexByte(s[:end], '=')
	if eq < 0 {
		return "", "", "", 0, end, fmt.Errorf("argument %q is not name=value (known: %s)",
			s[:end], strings.Join(parameterNames, ", "))
	}
	name = s[:eq]
	if !isKnownParameter(name) {
		return "", "", "", 0, end, unknownParameter(name)
	}

	valueOffset = eq + 1
	raw := s[valueOffset:]
	if !strings.HasPrefix(raw, `"`) {
		end := strings.IndexAny(raw, " \t")
		if end < 0 {
			end = len(raw)
		}
		return name, raw[:end], "", valueOffset, valueOffset + end, nil
	}

	quoted, err = strconv.QuotedPrefix(raw)
	if err != nil {
		return "", "", "", 0, len(s), fmt.Errorf("value of %s is an unterminated or malformed "+
			"quoted string", name)
	}
	value, _ = strconv.Unquote(quoted)
	consumed := valueOffset + len(quoted)
	if consumed < len(s) && s[consumed] != ' ' && s[consumed] != '\t' {
		return "", "", "", 0, len(s), fmt.Errorf("quoted value of %s must be followed by a space",
			name)
	}
	return name, value, quoted, valueOffset, consumed, nil
}

func isKnownParameter(name string) bool {
	for _, known := range parameterNames {
		if name == known {
			return true
		}
	}
	return false
}

func unknownParameter(name string) error {
	best, bestDistance := "", math.MaxInt
	for _, known := range parameterNames {
		if d := editDistance(name, known); d < bestDistance {
			best, bestDistance = known, d
		}
	}
	if bestDistance <= len(best)/2 {
		return fmt.Errorf("unknown parameter %q; did you mean %q?", name, best)
	}
	return fmt.Errorf("unknown parameter %q (known: %s)", name, strings.Join(parameterNames, ", "))
}

// set checks one value and stores it in d.
func (d *Directive) set(name, value string, pos token.Position) error {
	switch name {
	case "key":
		return d.setPool(value)
	case "window":
		return d.setWindow(value)
	case "allowance":
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil || n < 1 || n > MaxAllowance {
			return fmt.Errorf("allowance %q must be a whole number from 1 to %d", value,
				int64(MaxAllowance))
		}
		d.Allowance = n
	case "algo":
		if _, ok := Algorithms[value]; !ok {
			return fmt.Errorf("algo %q must be fixed, sliding or gcra", value)
		}
		d.Algorithm, d.AlgoPos = value, pos
	case "cost":
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil || n < 1 || n > MaxAllowance {
			return fmt.Errorf("cost %q must be a whole number from 1 to the allowance", value)
		}
		d.Cost, d.CostPos = n, pos
	case "by":
		if strings.TrimSpace(value) == "" {
			return fmt.Errorf("by is empty: give a Go expression for the caller's identity")
		}
		d.By, d.ByPos = value, pos
	case "on":
		d.OnPos = pos
		switch {
		case value == "drop":
			d.On = Drop
		case value == "disconnect":
			d.On = Disconnect
		case token.IsIdentifier(value):
			d.On, d.OnName = Call, value
		default:
			return fmt.Errorf("on=%q must be drop, disconnect or the name of a function", value)
		}
	}
	return nil
}

func (d *Directive) setPool(value string) error {
	if value == "" || len(value) > MaxPoolLen {
		return fmt.Errorf("key %q must be 1 to %d bytes long", value, MaxPoolLen)
	}
	for _, r := range value {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			strings.ContainsRune("_-.:", r)
		if !ok {
			return fmt.Errorf("key %q may hold only ASCII letters, digits and _ - . : (found %q)",
				value, r)
		}
	}
	d.Pool = value
	return nil
}

func (d *Directive) setWindow(value string) error {
	var window time.Duration
	if isDigits(value) {
		seconds, err := strconv.ParseInt(value, 10, 64)
		if err != nil || seconds > int64(MaxWindow/time.Second) {
			return errWindowRange(value)
		}
		window = time.Duration(seconds) * time.Second
	} else {
		parsed, err := time.ParseDuration(value)
		if err != nil {
			return fmt.Errorf("window %q is neither a Go duration (500ms, 1m) nor a whole "+
				"number of seconds", value)
		}
		window = parsed
	}
	if window < MinWindow || window > MaxWindow {
		return errWindowRange(value)
	}
	if window%time.Millisecond != 0 {
		return fmt.Errorf("window %q must be a whole number of milliseconds", value)
	}
	d.Window = window
	return nil
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func errWindowRange(value string) error {
	return fmt.Errorf("window %q is out of range: give at least 1ms and at most 366 days (%dh)",
		value, int(MaxWindow/time.Hour))
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
