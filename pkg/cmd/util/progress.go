package util

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Progress prints steps with their outcome and elapsed time. On a terminal
// it marks them with symbols (in color unless NO_COLOR is set); otherwise
// one plain line per event. Quiet prints only errors.
type Progress struct {
	mu    sync.Mutex
	out   io.Writer
	errw  io.Writer
	quiet bool
	color bool
	start time.Time
}

// NewProgress prints to out and errw; quiet leaves out all but errors.
func NewProgress(out, errw io.Writer, quiet bool) *Progress {
	color := false
	if f, ok := out.(*os.File); ok && os.Getenv("NO_COLOR") == "" {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			color = true
		}
	}
	return &Progress{out: out, errw: errw, quiet: quiet, color: color, start: time.Now()}
}

func (p *Progress) paint(code, s string) string {
	if !p.color {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

// What progress prints comes partly from the cluster and the sidecars
// (pod names, owners, remote errors): Step and Warn escape every character
// a terminal would act on, and Infof quotes each argument that holds one
// (Printable), so a crafted value is shown, never obeyed.

// EscapeLine writes each non-Printable character of s (and each byte that
// is not UTF-8) as its Go escape, leaving the rest as it is.
func EscapeLine(s string) string {
	if Printable(s) == s {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsPrint(r):
			b.WriteRune(r)
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}

// printableArgs makes each string or error argument Printable.
func printableArgs(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case string:
			out[i] = Printable(v)
		case error:
			out[i] = Printable(v.Error())
		default:
			out[i] = a
		}
	}
	return out
}

// Step implements session.Progress.
func (p *Progress) Step(what string) func(error) {
	what = EscapeLine(what)
	t := time.Now()
	return func(err error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		el := time.Since(t).Round(10 * time.Millisecond)
		if err != nil {
			fmt.Fprintf(p.errw, "%s %s (%s)\n", p.paint("31", "✗"), what, el)
			return
		}
		if !p.quiet {
			fmt.Fprintf(p.out, "%s %s (%s)\n", p.paint("32", "✓"), what, el)
		}
	}
}

// Warn implements session.Progress.
func (p *Progress) Warn(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.quiet {
		fmt.Fprintf(p.errw, "%s %s\n", p.paint("33", "!"), EscapeLine(msg))
	}
}

// Infof prints a line unless quiet.
func (p *Progress) Infof(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.quiet {
		fmt.Fprintf(p.out, format+"\n", printableArgs(args)...)
	}
}
