package inspect

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// Ignore is what a wiretap's diff and replay leave out of the comparison:
// parts of JSON bodies (a small subset of JSONPath) and response headers.
//
// The JSONPath subset, always from the root $:
//
//	.name      a member of an object (letters, digits, _ and -)
//	['name']   a member whose name holds other characters
//	[N]        element N of an array (from 0)
//	[*] or .*  every element of an array, or every member of an object
//	..name     the member name at any depth below (recursive descent)
//
// e.g. $.meta.requestId, $.items[*].updatedAt, $..timestamp. A path that
// finds nothing ignores nothing. header:NAME ignores a response header.
type Ignore struct {
	// Paths are the parsed JSONPaths.
	Paths []JSONPath
	// Headers are canonical header names.
	Headers map[string]bool
}

// ParseIgnore parses --ignore values: JSONPaths ($...) and header:NAME.
func ParseIgnore(values []string) (Ignore, error) {
	var ig Ignore
	for _, v := range values {
		if name, ok := strings.CutPrefix(v, "header:"); ok {
			if !httpguts.ValidHeaderFieldName(name) {
				return Ignore{}, fmt.Errorf("--ignore %q: %q is not a header name; write header:X-Request-Id", v, name)
			}
			if ig.Headers == nil {
				ig.Headers = map[string]bool{}
			}
			ig.Headers[http.CanonicalHeaderKey(name)] = true
			continue
		}
		p, err := ParseJSONPath(v)
		if err != nil {
			return Ignore{}, fmt.Errorf("--ignore %q: %w", v, err)
		}
		ig.Paths = append(ig.Paths, p)
	}
	return ig, nil
}

// JSONPath is a parsed path of the subset Ignore describes.
type JSONPath struct {
	text string
	segs []pathSeg
}

func (p JSONPath) String() string { return p.text }

type segKind int

const (
	segName  segKind = iota // .name, ['name']
	segIndex                // [N]
	segAll                  // [*], .*
	segDeep                 // ..name
)

type pathSeg struct {
	kind  segKind
	name  string
	index int
}

// ParseJSONPath parses one path of the subset Ignore describes.
func ParseJSONPath(s string) (JSONPath, error) {
	rest, ok := strings.CutPrefix(s, "$")
	if !ok {
		return JSONPath{}, fmt.Errorf("a JSONPath starts at the root, $ (e.g. $.items[*].id)")
	}
	p := JSONPath{text: s}
	for rest != "" {
		switch {
		case strings.HasPrefix(rest, ".."):
			name, n := pathName(rest[2:])
			if name == "" {
				return JSONPath{}, fmt.Errorf("%q: .. must be followed by a member name (e.g. $..timestamp)", s)
			}
			p.segs = append(p.segs, pathSeg{kind: segDeep, name: name})
			rest = rest[2+n:]
		case strings.HasPrefix(rest, ".*"):
			p.segs = append(p.segs, pathSeg{kind: segAll})
			rest = rest[2:]
		case strings.HasPrefix(rest, "."):
			name, n := pathName(rest[1:])
			if name == "" {
				return JSONPath{}, fmt.Errorf("%q: . must be followed by a member name (letters, digits, _ or -; ['name'] for others)", s)
			}
			p.segs = append(p.segs, pathSeg{kind: segName, name: name})
			rest = rest[1+n:]
		case strings.HasPrefix(rest, "[*]"):
			p.segs = append(p.segs, pathSeg{kind: segAll})
			rest = rest[3:]
		case strings.HasPrefix(rest, "['"):
			end := strings.Index(rest[2:], "']")
			if end < 0 {
				return JSONPath{}, fmt.Errorf("%q: ['name'] is not closed", s)
			}
			p.segs = append(p.segs, pathSeg{kind: segName, name: rest[2 : 2+end]})
			rest = rest[2+end+2:]
		case strings.HasPrefix(rest, "["):
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return JSONPath{}, fmt.Errorf("%q: [ is not closed", s)
			}
			i, err := strconv.Atoi(rest[1:end])
			if err != nil || i < 0 {
				return JSONPath{}, fmt.Errorf("%q: [%s] is not an array index; the subset has [N], [*] and ['name']", s, rest[1:end])
			}
			p.segs = append(p.segs, pathSeg{kind: segIndex, index: i})
			rest = rest[end+1:]
		default:
			return JSONPath{}, fmt.Errorf("%q: unexpected %q; the subset has .name, ['name'], [N], [*], .* and ..name", s, rest)
		}
	}
	if len(p.segs) == 0 {
		return JSONPath{}, fmt.Errorf("%q names the whole body; to skip the body, compare nothing instead", s)
	}
	return p, nil
}

// pathName reads a member name at the start of s: letters, digits, _ and -.
func pathName(s string) (string, int) {
	n := 0
	for n < len(s) {
		c := s[n]
		if c == '_' || c == '-' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80 {
			n++
			continue
		}
		break
	}
	return s[:n], n
}

// ignoredValue stands in for an array element a path ignores, on both
// sides, so the elements after it keep their places.
type ignoredValue struct{}

// remove takes out of v (decoded JSON, changed in place) what the path
// finds, and returns v.
func (p JSONPath) remove(v any) any { return removeSegs(v, p.segs) }

func removeSegs(v any, segs []pathSeg) any {
	if len(segs) == 0 {
		return v
	}
	seg, rest := segs[0], segs[1:]
	last := len(rest) == 0
	switch seg.kind {
	case segName:
		if m, ok := v.(map[string]any); ok {
			if child, ok := m[seg.name]; ok {
				if last {
					delete(m, seg.name)
				} else {
					m[seg.name] = removeSegs(child, rest)
				}
			}
		}
	case segIndex:
		if a, ok := v.([]any); ok && seg.index < len(a) {
			if last {
				a[seg.index] = ignoredValue{}
			} else {
				a[seg.index] = removeSegs(a[seg.index], rest)
			}
		}
	case segAll:
		switch x := v.(type) {
		case map[string]any:
			for k, child := range x {
				if last {
					delete(x, k)
				} else {
					x[k] = removeSegs(child, rest)
				}
			}
		case []any:
			for i := range x {
				if last {
					x[i] = ignoredValue{}
				} else {
					x[i] = removeSegs(x[i], rest)
				}
			}
		}
	case segDeep:
		// Every member called name at any depth; then the rest of the
		// path from each.
		switch x := v.(type) {
		case map[string]any:
			for k, child := range x {
				if k == seg.name {
					if last {
						delete(x, k)
						continue
					}
					child = removeSegs(child, rest)
				}
				x[k] = removeSegs(child, segs)
			}
		case []any:
			for i := range x {
				x[i] = removeSegs(x[i], segs)
			}
		}
	}
	return v
}
