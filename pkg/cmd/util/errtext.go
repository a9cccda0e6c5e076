package util

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrorText is err's message as the terminal may print it: an error can
// carry what a sidecar or the cluster said, so every character that is not
// Printable, but for the newlines and tabs of a message written for the
// terminal, is escaped as Go would quote it.
func ErrorText(err error) string {
	s := err.Error()
	clean := utf8.ValidString(s)
	for _, c := range s {
		if !unicode.IsPrint(c) && c != '\n' && c != '\t' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteString(strconv.QuoteToASCII(s[:1])[1:5])
		case r == '\n' || r == '\t' || unicode.IsPrint(r):
			b.WriteString(s[:n])
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		s = s[n:]
	}
	return b.String()
}
