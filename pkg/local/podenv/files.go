package podenv

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteEnvFile writes vars in the format of `docker run --env-file`: one
// NAME=VALUE per line, the value exactly as it is up to the end of the
// line (Docker reads no quotes and no escapes: a quote is part of the
// value). A value with a newline (or a NUL, or a name with a space or =)
// cannot be written in that format: those variables are left out and
// returned, for the caller to name (--env-json holds them exactly).
func WriteEnvFile(w io.Writer, vars []Var) (skipped []string, err error) {
	var b strings.Builder
	b.WriteString("# The environment of the intercepted container, as `docker run --env-file` reads it.\n")
	for _, v := range vars {
		if !envFileSafe(v) {
			skipped = append(skipped, v.Name)
			continue
		}
		b.WriteString(v.Name + "=" + v.Value + "\n")
	}
	_, err = io.WriteString(w, b.String())
	return skipped, err
}

func envFileSafe(v Var) bool {
	return v.Name != "" && !strings.ContainsAny(v.Name, "= \t\r\n\x00") && !strings.HasPrefix(v.Name, "#") &&
		!strings.ContainsAny(v.Value, "\r\n\x00")
}

// WriteJSON writes vars as one JSON object, name to value: every value
// exactly, newlines included.
func WriteJSON(w io.Writer, vars []Var) error {
	// Keep the pod's order: encode the object by hand, each pair with
	// encoding/json's quoting.
	var b strings.Builder
	b.WriteString("{")
	for i, v := range vars {
		if i > 0 {
			b.WriteString(",")
		}
		k, err := json.Marshal(v.Name)
		if err != nil {
			return err
		}
		val, err := json.Marshal(v.Value)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "\n  %s: %s", k, val)
	}
	b.WriteString("\n}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// Environ is vars as os/exec wants them, NAME=VALUE.
func Environ(vars []Var) []string {
	out := make([]string, 0, len(vars))
	for _, v := range vars {
		out = append(out, v.Name+"="+v.Value)
	}
	return out
}
