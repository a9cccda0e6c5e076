// Package podenv resolves the environment of a pod's container as the
// kubelet does, for a process on the developer's machine: envFrom first,
// then env in order with $(VAR) references, values from ConfigMaps,
// Secrets, the pod's fields and resources, and the Service-link variables.
// The functions are pure: the objects come in through Objects.
package podenv

import "strings"

// Expand replaces $(NAME) references in s with lookup's value, as the
// kubelet expands a container's env values, commands and args:
//
//   - $(NAME) whose NAME lookup knows becomes its value;
//   - $(NAME) that lookup does not know stays as written;
//   - $$ becomes $, so $$(NAME) is the text $(NAME);
//   - a $ before anything else, and an unclosed $(, stay as written.
func Expand(s string, lookup func(string) (string, bool)) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch next := s[i+1]; next {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString("$(")
				i++
				continue
			}
			name := s[i+2 : i+2+end]
			if v, ok := lookup(name); ok {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + name + ")")
			}
			i += 2 + end
		default:
			b.WriteByte('$')
			b.WriteByte(next)
			i++
		}
	}
	return b.String()
}
