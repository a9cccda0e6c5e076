package inspect

import (
	"fmt"
	"strconv"
	"strings"
)

// Filter picks exchanges for the list. The zero Filter matches everything.
type Filter struct {
	// Path matches exchanges whose path and query contain it, ignoring case.
	Path string
	// statuses are alternatives: an exact code (404) or a class (4 for 4xx).
	statuses []statusTerm
	status   string
}

type statusTerm struct {
	code  int // exact code, or 0
	class int // 1..5 for 1xx..5xx, or 0
}

// ParseFilter builds a Filter from what the user typed: a path substring
// and a status such as "404", "4xx" or "4xx,5xx" (empty: any status).
func ParseFilter(path, status string) (Filter, error) {
	f := Filter{Path: strings.TrimSpace(path), status: strings.TrimSpace(status)}
	for _, s := range strings.Split(f.status, ",") {
		s = strings.ToLower(strings.TrimSpace(s))
		if s == "" {
			continue
		}
		t, ok := parseStatusTerm(s)
		if !ok {
			return Filter{}, fmt.Errorf("status filter %q: use a code like 404, a class like 4xx, or several joined with commas (4xx,5xx)", s)
		}
		f.statuses = append(f.statuses, t)
	}
	return f, nil
}

func parseStatusTerm(s string) (statusTerm, bool) {
	if len(s) != 3 {
		return statusTerm{}, false
	}
	if s[1:] == "xx" && s[0] >= '1' && s[0] <= '5' {
		return statusTerm{class: int(s[0] - '0')}, true
	}
	code, err := strconv.Atoi(s)
	if err != nil || code < 100 || code > 599 {
		return statusTerm{}, false
	}
	return statusTerm{code: code}, true
}

// Status is the status filter as the user typed it.
func (f Filter) Status() string { return f.status }

// Empty reports whether the filter lets everything through.
func (f Filter) Empty() bool { return f.Path == "" && len(f.statuses) == 0 }

// Match reports whether ex passes the filter. An exchange still waiting for
// its answer has no status and passes no status filter yet.
func (f Filter) Match(ex *Exchange) bool {
	if f.Path != "" && !containsFold(ex.Path, f.Path) {
		return false
	}
	if len(f.statuses) == 0 {
		return true
	}
	for _, t := range f.statuses {
		if t.code != 0 && ex.Status == t.code || t.class != 0 && ex.Status/100 == t.class {
			return true
		}
	}
	return false
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
