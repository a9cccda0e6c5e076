package tap

import (
	"net/http"
	"strings"
)

// A sidecar never copies a credential: whoever holds a wiretap may not be
// whoever sent the request. The headers that carry credentials keep their
// names, and each value becomes Redacted; the developer's end does not
// compare a header whose cluster values are all Redacted. The inspector
// redacts the same headers (pkg/local/inspect's redact.go uses these).

// Redacted replaces each value of a credential header in a copy.
const Redacted = "[redacted by the sidecar]"

// secretHeaders carry credentials by their exact name (in lower case).
var secretHeaders = map[string]bool{
	"authorization": true, "proxy-authorization": true, "cookie": true, "set-cookie": true,
	"apikey": true, "api-key": true, "token": true, "secret": true, "password": true,
}

// secretSuffixes mark a header as a credential by the end of its name:
// X-Api-Key, X-Auth-Token, X-Amz-Security-Token, X-Client-Secret,
// X-Hub-Signature.
var secretSuffixes = []string{"-token", "_token", "-key", "_key", "-secret", "_secret", "-signature", "_signature",
	"-password", "_password", "-credential", "_credential", "-credentials", "_credentials"}

// SecretHeader says whether a header carries a credential by its name.
func SecretHeader(name string) bool {
	return secretHeaders[strings.ToLower(name)] || SecretSuffix(name)
}

// SecretSuffix says whether a header's or a query parameter's name ends
// as a credential's does (X-Api-Key, refresh_token, client_secret).
func SecretSuffix(name string) bool {
	n := strings.ToLower(name)
	for _, s := range secretSuffixes {
		if strings.HasSuffix(n, s) {
			return true
		}
	}
	return false
}

// Redact replaces, in place, the values of h's credential headers with
// Redacted, keeping their names and number.
func Redact(h http.Header) {
	for name, vs := range h {
		if !SecretHeader(name) {
			continue
		}
		red := make([]string, len(vs))
		for i := range red {
			red[i] = Redacted
		}
		h[name] = red
	}
}

// AllRedacted says whether every value of a header is Redacted (and it
// has one): such a header was a credential, and its copy holds none.
func AllRedacted(vs []string) bool {
	for _, v := range vs {
		if v != Redacted {
			return false
		}
	}
	return len(vs) > 0
}
