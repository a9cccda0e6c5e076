package cli

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// progress prints steps with their outcome and elapsed time. On a terminal
// it marks them with symbols (in color unless NO_COLOR is set); otherwise
// one plain line per event. Quiet prints only errors.
type progress struct {
	mu    sync.Mutex
	out   io.Writer
	errw  io.Writer
	quiet bool
	color bool
	start time.Time
}

func newProgress(out, errw io.Writer, quiet bool) *progress {
	color := false
	if f, ok := out.(*os.File); ok && os.Getenv("NO_COLOR") == "" {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			color = true
		}
	}
	return &progress{out: out, errw: errw, quiet: quiet, color: color, start: time.Now()}
}

func (p *progress) paint(code, s string) string {
	if !p.color {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

// Step implements session.Progress.
func (p *progress) Step(what string) func(error) {
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
func (p *progress) Warn(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.quiet {
		fmt.Fprintf(p.errw, "%s %s\n", p.paint("33", "!"), msg)
	}
}

// Infof prints a line unless quiet.
func (p *progress) Infof(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.quiet {
		fmt.Fprintf(p.out, format+"\n", args...)
	}
}
