package tunnel

import (
	"errors"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// Code classifies a failed control call, so the CLI decides with errors.Is
// on the sentinels below, never by reading the message.
type Code string

// The codes a sidecar answers with.
const (
	// CodeConflict: the route is taken by another live route.
	CodeConflict Code = "conflict"
	// CodeNotFound: what the call names does not exist (a doctor's watch).
	CodeNotFound Code = "not-found"
	// CodeBadRequest: the call is malformed (a route that names nothing,
	// a watch without a marker).
	CodeBadRequest Code = "bad-request"
	// CodeUnsupported: the sidecar cannot do it (an operation or a route
	// kind it does not know).
	CodeUnsupported Code = "unsupported"
	// CodeFailed: the sidecar tried and failed (a probe that got no answer).
	CodeFailed Code = "failed"
)

// The sentinels a sidecar's answer matches with errors.Is.
var (
	// ErrConflict: the route is already taken.
	ErrConflict = errors.New("route already taken")
	// ErrNotFound: what the call names does not exist.
	ErrNotFound = errors.New("not found")
	// ErrBadRequest: the call is malformed.
	ErrBadRequest = errors.New("bad request")
	// ErrUnsupported: the sidecar cannot do what was asked.
	ErrUnsupported = errors.New("not supported")
	// ErrFailed: the sidecar tried and failed.
	ErrFailed = errors.New("failed")
)

var sentinels = map[Code]error{
	CodeConflict: ErrConflict, CodeNotFound: ErrNotFound, CodeBadRequest: ErrBadRequest,
	CodeUnsupported: ErrUnsupported, CodeFailed: ErrFailed,
}

// RemoteError is a sidecar's answer to a failed call.
type RemoteError struct {
	Code    Code
	Message string
}

// Error is the sidecar's message, quoted when it holds anything but
// printable characters: it comes from the cluster and reaches a terminal.
func (e *RemoteError) Error() string { return Printable(e.Message) }

// MaxRemoteText bounds what of a sidecar-supplied string is printed.
const MaxRemoteText = 1024

// Printable makes a string a sidecar supplied (an error, a pod's name)
// safe to print: as it is when every character is printable (spaces
// included) and it is at most MaxRemoteText bytes, else quoted in Go
// syntax, escapes and all, cut to MaxRemoteText.
func Printable(s string) string {
	ok := len(s) <= MaxRemoteText && utf8.ValidString(s)
	for _, r := range s {
		if !ok {
			break
		}
		ok = unicode.IsPrint(r)
	}
	if ok {
		return s
	}
	if len(s) > MaxRemoteText {
		s = s[:MaxRemoteText]
	}
	return strconv.Quote(s)
}

// Is matches the sentinel of e's code.
func (e *RemoteError) Is(target error) bool {
	s, ok := sentinels[e.Code]
	return ok && s == target
}

// coded marks an error of the sidecar's own with a code.
func coded(code Code, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{sentinels[code]}, args...)...)
}

// codeOf is the code an error is answered with: the code of the first
// sentinel it wraps, else failed.
func codeOf(err error) Code {
	for _, c := range [...]Code{CodeConflict, CodeNotFound, CodeBadRequest, CodeUnsupported} {
		if errors.Is(err, sentinels[c]) {
			return c
		}
	}
	return CodeFailed
}
