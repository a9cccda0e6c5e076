package inspect

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tap"
)

// What the inspector shows redacted unless --inspect-show-secrets: the
// headers and query parameters that carry credentials. Replays send them
// as they came.

// secretParams are query parameters that carry credentials by their exact
// name (compared in lower case): OAuth's access_token, signed URLs'
// signature, sig and X-Amz-Signature.
var secretParams = map[string]bool{
	"token": true, "key": true, "apikey": true, "secret": true, "password": true, "passwd": true, "pwd": true,
	"signature": true, "sig": true, "auth": true, "jwt": true, "session": true, "sessionid": true,
	"x-amz-signature": true, "x-amz-credential": true, "x-amz-security-token": true,
	"x-goog-signature": true, "x-goog-credential": true,
}

// secretHeader tells whether a header carries a credential (the headers
// a sidecar never copies to a wiretap, pkg/wire/tap).
func secretHeader(name string) bool { return tap.SecretHeader(name) }

// secretParam tells whether a query parameter carries a credential.
func secretParam(name string) bool {
	return secretParams[strings.ToLower(name)] || tap.SecretSuffix(name)
}

// redactedParam is what a credential's value in a shown path becomes.
const redactedParam = "[redacted]"

func redact(h http.Header) http.Header {
	var out http.Header
	for name, vs := range h {
		if !secretHeader(name) {
			continue
		}
		if out == nil {
			out = h.Clone()
		}
		red := make([]string, len(vs))
		for i := range red {
			red[i] = Redacted
		}
		out[name] = red
	}
	if out == nil {
		return h
	}
	return out
}

// redactPath replaces the values of the query parameters that carry
// credentials in a request's path and query, the rest as sent.
func redactPath(p string) string {
	path, query, ok := strings.Cut(p, "?")
	if !ok {
		return p
	}
	parts := strings.Split(query, "&")
	changed := false
	for i, part := range parts {
		raw, _, hasValue := strings.Cut(part, "=")
		name, err := url.QueryUnescape(raw)
		if err != nil {
			name = raw
		}
		if hasValue && secretParam(name) {
			parts[i] = raw + "=" + redactedParam
			changed = true
		}
	}
	if !changed {
		return p
	}
	return path + "?" + strings.Join(parts, "&")
}
