package proxy

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// cookieOracle is net/http's reading of the Cookie lines: does the request
// carry cookie name with value want?
func cookieOracle(lines []string, name, want string) bool {
	r := &http.Request{Header: http.Header{"Cookie": lines}}
	for _, c := range r.Cookies() {
		if c.Name == name && c.Value == want {
			return true
		}
	}
	return false
}

// A cookie route matches a request whose cookies include name=value, as
// net/http reads them, and nothing that merely contains the text.
func TestHasCookie(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []string
		want  bool
	}{
		{"alone", []string{"dev=alice"}, true},
		{"among others", []string{"session=9f2c; dev=alice; theme=dark"}, true},
		{"no space after semicolon", []string{"session=9f2c;dev=alice"}, true},
		{"spaces around the line", []string{"  dev=alice ;  "}, true},
		{"quoted value", []string{`dev="alice"`}, true},
		{"duplicate name, match second", []string{"dev=bob; dev=alice"}, true},
		{"duplicate name, match first", []string{"dev=alice; dev=bob"}, true},
		{"second Cookie header", []string{"session=9f2c", "dev=alice"}, true},
		{"other value", []string{"dev=bob"}, false},
		{"value prefix", []string{"dev=alice2"}, false},
		{"value suffix", []string{"dev=malice"}, false},
		{"name suffix", []string{"mydev=alice"}, false},
		{"name prefix", []string{"dev2=alice"}, false},
		{"inside another value", []string{"note=dev=alice"}, false},
		{"name in another case", []string{"Dev=alice"}, false},
		{"another cookie with the value", []string{"user=alice"}, false},
		{"space before the value", []string{"dev= alice"}, false},
		{"half quoted", []string{`dev="alice`}, false},
		{"no value", []string{"dev"}, false},
		{"empty", []string{""}, false},
		{"no Cookie header", nil, false},
	} {
		got := hasCookie(tc.lines, "dev", "alice")
		if got != tc.want {
			t.Errorf("%s: %q matched %v, want %v", tc.name, tc.lines, got, tc.want)
		}
		if oracle := cookieOracle(tc.lines, "dev", "alice"); oracle != got {
			t.Errorf("%s: %q matched %v, net/http reads %v", tc.name, tc.lines, got, oracle)
		}
	}
}

// A baggage route matches a request whose W3C baggage carries the member
// with the value after percent-decoding, wherever it is among the members.
func TestHasBaggage(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []string
		value string
		want  bool
	}{
		{"alone", []string{"dev=alice"}, "alice", true},
		{"among others", []string{"userId=42,dev=alice,isProduction=false"}, "alice", true},
		{"whitespace", []string{" userId=42 , dev = alice ,isProduction=false "}, "alice", true},
		{"tabs", []string{"\tdev\t=\talice\t"}, "alice", true},
		{"properties", []string{"dev=alice;ttl=30;sampled, userId=42"}, "alice", true},
		{"space before properties", []string{"dev=alice ; ttl=30"}, "alice", true},
		{"second baggage header", []string{"userId=42", "dev=alice"}, "alice", true},
		{"percent-encoded", []string{"dev=alice%20smith"}, "alice smith", true},
		{"lower-case hex", []string{"dev=a%2fb"}, "a/b", true},
		{"encoded percent", []string{"dev=100%25"}, "100%", true},
		{"encoded utf-8", []string{"dev=J%C3%BCrgen"}, "Jürgen", true},
		{"plus is a plus", []string{"dev=alice+smith"}, "alice smith", false},
		{"plus matches plus", []string{"dev=alice+smith"}, "alice+smith", true},
		{"not decoded twice", []string{"dev=100%2525"}, "100%", false},
		{"malformed member skipped", []string{"garbage,,=x, dev=alice"}, "alice", true},
		{"bad escape skipped", []string{"dev=al%zz, dev=alice"}, "alice", true},
		{"truncated escape", []string{"dev=alice%2"}, "alice", false},
		{"quoted value is malformed", []string{`dev="alice"`}, "alice", false},
		{"space inside value is malformed", []string{"dev=ali ce"}, "ali ce", false},
		{"other value", []string{"dev=bob"}, "alice", false},
		{"value prefix", []string{"dev=alice2"}, "alice", false},
		{"key suffix", []string{"mydev=alice"}, "alice", false},
		{"key in another case", []string{"Dev=alice"}, "alice", false},
		{"a property, not a member", []string{"userId=42;dev=alice"}, "alice", false},
		{"empty value", []string{"dev="}, "alice", false},
		{"no baggage header", nil, "alice", false},
	} {
		if got := hasBaggage(tc.lines, "dev", tc.value); got != tc.want {
			t.Errorf("%s: %q matched %v, want %v", tc.name, tc.lines, got, tc.want)
		}
	}
}

// A request with the route's cookie, or baggage member, goes to the route,
// also when an HTTP/2 client sends its cookies as several header fields;
// one without goes to the app.
func TestRoutingByCookieAndBaggage(t *testing.T) {
	app, dev := named("app"), named("dev")
	defer app.Close()
	defer dev.Close()
	devAddr := strings.TrimPrefix(dev.URL, "http://")
	addr := startProxy(t, Config{
		Upstream: strings.TrimPrefix(app.URL, "http://"),
		Static: []StaticRoute{
			{Cookie: "dev", Value: "alice", Addr: devAddr},
			{Baggage: "dev", Value: "bob smith", Addr: devAddr},
		},
	})
	h2 := &http.Transport{}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	h2.Protocols = &p
	for name, c := range map[string]*http.Client{"http1": {}, "h2c": {Transport: h2}} {
		t.Run(name, func(t *testing.T) {
			for _, tc := range []struct {
				header, value, want string
			}{
				{"Cookie", "session=9f2c; dev=alice", "dev"},
				{"Cookie", "session=9f2c; dev=alice2", "app"},
				{"Cookie", "session=9f2c", "app"},
				{"Baggage", "userId=42, dev=bob%20smith;ttl=30", "dev"},
				{"Baggage", "userId=42, dev=bob", "app"},
				{"X-Dev", "alice", "app"},
			} {
				if got := answeredBy(t, c, "http://"+addr+"/", map[string]string{tc.header: tc.value}); got != tc.want {
					t.Errorf("%s: %s answered, want %s", tc.header+": "+tc.value, got, tc.want)
				}
			}
			req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
			req.Header["Cookie"] = []string{"session=9f2c", "dev=alice"}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("X-Answered-By"); got != "dev" {
				t.Errorf("cookie in a second Cookie field: %s answered", got)
			}
		})
	}
}

// Whatever the Cookie line, the matcher never panics and agrees with
// net/http's reading of it for every route a sidecar accepts.
func FuzzHasCookie(f *testing.F) {
	for _, s := range [][3]string{
		{"dev=alice", "dev", "alice"}, {`a=1; dev="alice"`, "dev", "alice"}, {"dev=bob; dev=alice", "dev", "alice"},
		{"dev= alice", "dev", "alice"}, {"dev=al;ice", "dev", "al"}, {`dev="`, "dev", `"`}, {";;; =", "dev", "x"},
		{"\xff=\xfe", "\xff", "\xfe"}, {"dev=alice\r\n", "dev", "alice"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, line, name, value string) {
		got := hasCookie([]string{line}, name, value)
		if raw := cookieIs([]byte(line), name, value); raw != got {
			t.Fatalf("%q for cookie %s=%s: matched %v as a string, %v as bytes", line, name, value, got, raw)
		}
		if (route.Route{Cookie: name, Value: value}).Validate() != nil {
			return // the sidecar refuses such a route
		}
		if strings.Count(line, ";") >= 3000 {
			return // net/http reads no cookie at all from so many
		}
		if want := cookieOracle([]string{line}, name, value); got != want {
			t.Fatalf("%q for cookie %s=%s: matched %v, net/http reads %v", line, name, value, got, want)
		}
	})
}

// baggageOracle is a plain reading of W3C baggage, allocating freely.
func baggageOracle(line, key, want string) bool {
	for _, m := range strings.Split(line, ",") {
		kv := strings.SplitN(strings.SplitN(m, ";", 2)[0], "=", 2)
		if len(kv) != 2 || strings.Trim(kv[0], " \t") != key {
			continue
		}
		raw := strings.Trim(kv[1], " \t")
		if strings.IndexFunc(raw, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune(`",;\`, r) }) >= 0 {
			continue
		}
		if v, err := url.PathUnescape(raw); err == nil && v == want {
			return true
		}
	}
	return false
}

// Whatever the baggage line, the matcher never panics, agrees with a plain
// reading of the W3C format, and finds the member once it is added.
func FuzzHasBaggage(f *testing.F) {
	for _, s := range [][3]string{
		{"dev=alice", "dev", "alice"}, {"a=1, dev = alice ;p=2", "dev", "alice"}, {"dev=a%20b", "dev", "a b"},
		{"dev=%", "dev", "%"}, {"dev=%4", "dev", "@"}, {"dev=%41", "dev", "A"}, {",,;=,", "dev", "x"},
		{"dev=\xff", "dev", "\xff"}, {"dev=\t", "dev", "\t"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, line, key, value string) {
		got := hasBaggage([]string{line}, key, value)
		if raw := baggageIs([]byte(line), key, value); raw != got {
			t.Fatalf("%q for baggage %s=%q: matched %v as a string, %v as bytes", line, key, value, got, raw)
		}
		if (route.Route{Baggage: key, Value: value}).Validate() != nil {
			return // the sidecar refuses such a route
		}
		if want := baggageOracle(line, key, value); got != want {
			t.Fatalf("%q for baggage %s=%q: matched %v, want %v", line, key, value, got, want)
		}
		if withMember := line + "," + key + "=" + route.EscapeBaggage(value); !hasBaggage([]string{withMember}, key, value) {
			t.Fatalf("%q does not match baggage %s=%q", withMember, key, value)
		}
	})
}

// The fast path decides on the head as received; it must pick the route
// net/http's reading of the same head picks, whatever the case of the
// names, the blanks around values or the number of lines.
func TestMatchHeadAgreesWithHeader(t *testing.T) {
	dial := func(context.Context) (net.Conn, error) { return nil, nil }
	table := &Table{}
	for _, r := range []route.Route{
		{Header: "x-dev", Value: "alice"},
		{Cookie: "dev", Value: "bob"},
		{Baggage: "dev", Value: "carol d"},
	} {
		if _, err := table.Add(r, dial); err != nil {
			t.Fatal(err)
		}
	}
	for _, fields := range []string{
		"X-Dev: alice",
		"x-dev:alice",
		"X-DEV: \talice \t",
		"X-Dev: alice2",
		"X-Dev: bob\r\nX-Dev: alice",
		"X-Dev: Alice",
		"X-Devs: alice",
		"Cookie: a=1; dev=bob",
		"Cookie: a=1\r\ncookie: dev=\"bob\"",
		"Cookie: dev=bobby",
		"Cookie: x-dev=alice",
		"Baggage: a=1, dev = carol%20d ;p=1",
		"baggage: dev=carol d",
		"Baggage: dev=carol",
		"X-Note: dev=bob",
		"",
	} {
		head := "GET / HTTP/1.1\r\nHost: app\r\n" + fields
		if fields != "" {
			head += "\r\n"
		}
		head += "\r\n"
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
		if err != nil {
			t.Fatalf("%q: %v", fields, err)
		}
		want, got := table.match(req.Method, req.RequestURI, req.Header), table.matchHead([]byte(head))
		if got != want {
			t.Errorf("%q: the raw head goes to %v, net/http's reading to %v", fields, routeName(got), routeName(want))
		}
	}
}

func routeName(r *liveRoute) string {
	if r == nil {
		return "the app"
	}
	return r.String()
}
