// Package metricnames is the list of metric names the operator's alerts and
// dashboard may query (metrics.txt, with the source of each), and a small
// PromQL tokenizer that finds the metric names an expression uses, so tests
// can check every expression against the list.
package metricnames

import (
	"bufio"
	_ "embed"
	"fmt"
	"strings"
)

//go:embed metrics.txt
var metricsTxt string

// Known returns the listed metric names, each with its source.
func Known() (map[string]string, error) {
	return Parse(metricsTxt)
}

// Parse reads the metrics.txt format: "<name> <source>" per line, blank lines
// and lines starting with # ignored. A name without a source, an invalid
// name or a name listed twice is an error.
func Parse(text string) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, source, _ := strings.Cut(line, " ")
		source = strings.TrimSpace(source)
		switch {
		case !validName(name):
			return nil, fmt.Errorf("line %d: %q is not a metric name", n, name)
		case source == "":
			return nil, fmt.Errorf("line %d: %s has no source", n, name)
		case out[name] != "":
			return nil, fmt.Errorf("line %d: %s is listed twice", n, name)
		}
		out[name] = source
	}
	return out, sc.Err()
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !identStart(r) && (i == 0 || !isDigit(r)) {
			return false
		}
	}
	return true
}

// notMetrics are PromQL words that read like identifiers but are not metric
// names: aggregation operators (which may be followed by "by (...)" rather
// than a parenthesis), set and matching keywords, and literals.
var notMetrics = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true,
	"and": true, "or": true, "unless": true, "atan2": true, "bool": true, "offset": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"inf": true, "nan": true,
}

// labelListKeywords are followed by a parenthesised list of label names.
var labelListKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// Referenced returns the metric names expr selects, in order of first use.
// It is a tokenizer, not a parser: it skips strings, label matchers ({...}),
// ranges and subqueries ([...]), numbers and durations, function calls
// (an identifier followed by "("), aggregation operators, keywords and the
// label lists after by/without/on/ignoring/group_left/group_right. Grafana
// variables ($namespace, $__rate_interval) only appear inside strings or
// brackets, and are skipped with them.
func Referenced(expr string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	rs := []rune(expr)
	for i := 0; i < len(rs); {
		r := rs[i]
		switch {
		case r == '"' || r == '\'' || r == '`':
			end, err := skipString(rs, i)
			if err != nil {
				return nil, err
			}
			i = end
		case r == '{' || r == '[':
			end, err := skipGroup(rs, i)
			if err != nil {
				return nil, err
			}
			i = end
		case r == '#':
			// A comment runs to the end of the line.
			for i < len(rs) && rs[i] != '\n' {
				i++
			}
		case isDigit(r) || (r == '.' && i+1 < len(rs) && isDigit(rs[i+1])):
			// Numbers, hex, exponents and durations such as 5m or 1h30m.
			for i < len(rs) && (isDigit(rs[i]) || identStart(rs[i]) || rs[i] == '.') {
				i++
			}
		case identStart(r):
			start := i
			for i < len(rs) && (identStart(rs[i]) || isDigit(rs[i])) {
				i++
			}
			word := string(rs[start:i])
			j := i
			for j < len(rs) && isSpace(rs[j]) {
				j++
			}
			lower := strings.ToLower(word)
			switch {
			case labelListKeywords[lower]:
				if j < len(rs) && rs[j] == '(' {
					end, err := skipGroup(rs, j)
					if err != nil {
						return nil, err
					}
					i = end
				}
			case notMetrics[lower]:
			case j < len(rs) && rs[j] == '(':
				// A function call.
			default:
				if !seen[word] {
					seen[word] = true
					out = append(out, word)
				}
			}
		case r == '$':
			// A Grafana variable outside a string, e.g. [$__rate_interval]
			// is handled with its brackets; a bare one is skipped here.
			i++
			for i < len(rs) && (identStart(rs[i]) || isDigit(rs[i])) {
				i++
			}
		default:
			i++
		}
	}
	return out, nil
}

// skipString returns the index after the string literal starting at i.
func skipString(rs []rune, i int) (int, error) {
	quote := rs[i]
	for j := i + 1; j < len(rs); j++ {
		switch {
		case rs[j] == '\\' && quote != '`':
			j++
		case rs[j] == quote:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unterminated string at offset %d", i)
}

// skipGroup returns the index after the bracket group ((, { or [) starting
// at i, skipping strings and nested groups inside it.
func skipGroup(rs []rune, i int) (int, error) {
	closing := map[rune]rune{'(': ')', '{': '}', '[': ']'}
	stack := []rune{closing[rs[i]]}
	for j := i + 1; j < len(rs); {
		switch r := rs[j]; {
		case r == '"' || r == '\'' || r == '`':
			end, err := skipString(rs, j)
			if err != nil {
				return 0, err
			}
			j = end
			continue
		case r == '(' || r == '{' || r == '[':
			stack = append(stack, closing[r])
		case r == ')' || r == '}' || r == ']':
			if r != stack[len(stack)-1] {
				return 0, fmt.Errorf("unbalanced %q at offset %d", r, j)
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return j + 1, nil
			}
		}
		j++
	}
	return 0, fmt.Errorf("unclosed %q at offset %d", rs[i], i)
}

func identStart(r rune) bool {
	return r == '_' || r == ':' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
}

func isDigit(r rune) bool { return r >= '0' && r <= '9' }

func isSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }
