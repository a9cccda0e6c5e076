package inspect

import (
	"net/http"
	"net/url"
	"strings"
)

// What the inspector shows redacted unless --inspect-show-secrets: the
// headers and query parameters that carry credentials. Replays send them
// as they came.

// secretHeaders carry credentials by their exact name.
var secretHeaders = map[string]bool{
	"authorization": true, "proxy-authorization": true, "cookie": true, "set-cookie": true,
	"apikey": true, "api-key": true, "token": true, "secret": true, "password": true,
}

// secretSuffixes mark a header or query parameter as a credential by the
// end of its name: X-Api-Key, X-Auth-Token, X-Amz-Security-Token,
// X-Client-Secret, X-Hub-Signature, refresh_token, client_secret.
var secretSuffixes = []string{"-token", "_token", "-key", "_key", "-secret", "_secret", "-signature", "_signature",
	"-password", "_password", "-credential", "_credential", "-credentials", "_credentials"}

// secretParams are query parameters that carry credentials by their exact
// name (compared in lower case): OAuth's access_token, signed URLs'
// signature, sig and X-Amz-Signature.
var secretParams = map[string]bool{
	"token": true, "key": true, "apikey": true, "secret": true, "password": true, "passwd": true, "pwd": true,
	"signature": true, "sig": true, "auth": true, "jwt": true, "session": true, "sessionid": true,
	"x-amz-signature": true, "x-amz-credential": true, "x-amz-security-token": true,
	"x-goog-signature": true, "x-goog-credential": true,
}

// secretName tells whether a header or parameter name carries a credential.
func secretName(name string, exact map[string]bool) bool {
	n := strings.ToLower(name)
	if exact[n] {
		return true
	}
	for _, s := range secretSuffixes {
		if strings.HasSuffix(n, s) {
			return true
		}
	}
	return false
}

// redactedParam is what a credential's value in a shown path becomes.
const redactedParam = "[redacted]"

func redact(h http.Header) http.Header {
	var out http.Header
	for name, vs := range h {
		if !secretName(name, secretHeaders) {
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
		if hasValue && secretName(name, secretParams) {
			parts[i] = raw + "=" + redactedParam
			changed = true
		}
	}
	if !changed {
		return p
	}
	return path + "?" + strings.Join(parts, "&")
}
