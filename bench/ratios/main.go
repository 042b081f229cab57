// Command ratios reads `go test -bench` output on stdin and prints a Markdown table of
// each benchmark group as ratios: for every peer, how many times its time per call is
// limitgen's (above 1: limitgen is faster), with allocations per call. Times are medians
// over the runs of -count.
//
// Benchmarks are named Group/callers=N/impl=NAME. A peer NAME-ALGO is compared with
// limitgen-ALGO when there is one, else with limitgen-fixed; "direct" and "reflect" with
// limitgen-generated.
package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

var line = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op` +
	`(?:\s+([\d.]+) B/op\s+([\d.]+) allocs/op)?`)

type result struct {
	ns     []float64
	allocs float64
}

func main() {
	results := map[string]*result{}
	var order []string
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		r := results[m[1]]
		if r == nil {
			r = &result{}
			results[m[1]] = r
			order = append(order, m[1])
		}
		ns, _ := strconv.ParseFloat(m[2], 64)
		r.ns = append(r.ns, ns)
		r.allocs, _ = strconv.ParseFloat(m[4], 64)
	}
	fmt.Println("| benchmark | callers | implementation | ns/call | allocs/call | vs limitgen |")
	fmt.Println("|---|---|---|---:|---:|---|")
	for _, name := range order {
		i := strings.LastIndex(name, "/impl=")
		group, impl := name[:i], name[i+len("/impl="):]
		bench, callers, _ := strings.Cut(group, "/callers=")
		r := results[name]
		vs := ""
		if base := baseline(impl, group, results); base != "" {
			ratio := median(r.ns) / median(results[base].ns)
			vs = fmt.Sprintf("%.2f× %s's time", ratio, strings.TrimPrefix(base, group+"/impl="))
		}
		fmt.Printf("| %s | %s | %s | %.1f | %.0f | %s |\n", bench, callers, impl,
			median(r.ns), r.allocs, vs)
	}
}

// baseline is the limitgen benchmark impl is compared with, or "" for limitgen's own.
func baseline(impl, group string, results map[string]*result) string {
	if strings.HasPrefix(impl, "limitgen") {
		return ""
	}
	var candidates []string
	if impl == "direct" || impl == "reflect" {
		candidates = []string{"limitgen-generated"}
	} else {
		if i := strings.LastIndex(impl, "-"); i >= 0 {
			candidates = append(candidates, "limitgen"+impl[i:])
		}
		candidates = append(candidates, "limitgen-fixed")
	}
	for _, c := range candidates {
		if _, ok := results[group+"/impl="+c]; ok {
			return group + "/impl=" + c
		}
	}
	return ""
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
