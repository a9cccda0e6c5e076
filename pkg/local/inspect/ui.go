package inspect

import (
	"bytes"
	"crypto/subtle"
	"embed"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// The page's files are embedded: the inspector works offline and loads
// nothing from elsewhere.
//
//go:embed ui
var uiFiles embed.FS

// ui serves the inspector page and its JSON API.
type ui struct {
	store     *Store
	forwarder http.Handler
	tmpl      *template.Template
	opts      UIOptions
}

// UIOptions say what the inspector shows and to whom.
type UIOptions struct {
	// ShowSecrets shows the values of the headers and query parameters
	// that carry credentials (Authorization, Cookie, X-Api-Key,
	// ?access_token=...: redact.go); by default
	// the page and the API show them redacted. Replays send them as they
	// came either way.
	ShowSecrets bool
	// Preview returns the intercept's preview URL ("" while there is
	// none), shown at the top of the page.
	Preview func() string
	// Token, when set, is required of every request (?token= once, then a
	// cookie): for an inspector reached from other machines.
	Token string
}

// Redacted is what the inspector shows instead of a credential.
const Redacted = "[redacted: --inspect-show-secrets shows it]"

// shown is ex as the page and the API show it: credentials (headers and
// query parameters, redact.go) redacted unless ShowSecrets.
func (u *ui) shown(ex Exchange) Exchange {
	if u.opts.ShowSecrets {
		return ex
	}
	ex.Path = redactPath(ex.Path)
	ex.RequestHeader = redact(ex.RequestHeader)
	ex.ResponseHeader = redact(ex.ResponseHeader)
	ex.ResponseTrailer = redact(ex.ResponseTrailer)
	if w := ex.Wiretap; w != nil {
		c := *w
		c.Header = redact(c.Header)
		if c.Diff != nil {
			c.Diff = redactDiff(c.Diff)
		}
		ex.Wiretap = &c
	}
	return ex
}

// tokenCookie holds the inspector's token once a browser presented it.
const tokenCookie = "kubectl-intercept-inspector"

// withToken requires the token on every request, as ?token= (which sets a
// cookie for the page's own requests) or the cookie; without it, 401.
func withToken(token string, next http.Handler) http.Handler {
	ok := func(s string) bool { return subtle.ConstantTimeCompare([]byte(s), []byte(token)) == 1 }
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if q := r.URL.Query().Get("token"); q != "" && ok(q) {
			http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
			next.ServeHTTP(w, r)
			return
		}
		if c, err := r.Cookie(tokenCookie); err == nil && ok(c.Value) {
			next.ServeHTTP(w, r)
			return
		}
		http.Error(w, "this inspector needs the token its owner was given (the URL kubectl intercept printed)", http.StatusUnauthorized)
	})
}

// NewUI returns the inspector: the live list of exchanges in store, their
// details, and replay through forwarder (nil turns replay off). Serve it on
// loopback only; it shows request bodies.
//
// Pages: / (the list; ?path= and ?status= filter it), /exchanges/{id}.
// JSON: GET /api/exchanges, GET /api/exchanges/{id},
// POST /api/exchanges/{id}/replay, GET /api/events (server-sent events
// the page follows) and GET /api/wiretap (a wiretap's totals: copies,
// differing answers).
func NewUI(store *Store, forwarder http.Handler) http.Handler {
	return NewUIWith(store, forwarder, UIOptions{})
}

// NewUIWith is NewUI with options.
func NewUIWith(store *Store, forwarder http.Handler, opts UIOptions) http.Handler {
	u := &ui{store: store, forwarder: forwarder, opts: opts}
	u.tmpl = template.Must(template.New("").Funcs(template.FuncMap{
		"clock":       formatClock,
		"stamp":       formatStamp,
		"duration":    formatDuration,
		"size":        formatSize,
		"statusText":  statusText,
		"statusClass": statusClass,
		"int64":       func(n int) int64 { return int64(n) },
	}).ParseFS(uiFiles, "ui/*.html"))
	static, err := fs.Sub(uiFiles, "ui/static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}

	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", u.page)
	mux.HandleFunc("GET /exchanges/{id}", u.page)
	mux.HandleFunc("GET /exchanges/{id}/detail", u.detailFragment)
	mux.HandleFunc("POST /exchanges/{id}/replay", u.replayForm)
	mux.HandleFunc("GET /api/exchanges", u.apiList)
	mux.HandleFunc("GET /api/exchanges/{id}", u.apiGet)
	mux.HandleFunc("POST /api/exchanges/{id}/replay", u.apiReplay)
	mux.HandleFunc("GET /api/events", u.events)
	mux.HandleFunc("GET /api/wiretap", u.apiWiretap)
	h := securityHeaders(http.NewCrossOriginProtection().Handler(mux))
	if opts.Token != "" {
		return withToken(opts.Token, h)
	}
	return localNamesOnly(h)
}

// localNamesOnly refuses requests addressed to a host name other than
// localhost. A web page on some other site could point its own name at
// 127.0.0.1 (DNS rebinding) and read the requests listed here; it cannot
// make the browser send an IP address or localhost as the Host.
func localNamesOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !localName(r.Host) {
			http.Error(w, "The inspector answers only at an IP address or localhost, such as http://127.0.0.1:4040/.", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func localName(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	return net.ParseIP(host) != nil || host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// securityHeaders keeps the page from running anything but its own script,
// so a recorded body can never become code.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

// pageData is what the page template shows.
type pageData struct {
	Rows      []Exchange // newest first
	Seq       uint64     // the store's point the rows were read at
	Limit     int
	Filter    Filter
	FilterErr string
	Selected  *detailView
	// Missing is a requested exchange that is not kept (any more).
	Missing string
	// Preview is the intercept's preview URL, if it has one.
	Preview string
	// Taps are the wiretap's totals.
	Taps WiretapCounts
}

func (u *ui) page(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := pageData{Limit: u.store.Limit(), Taps: u.store.WiretapCounts()}
	if u.opts.Preview != nil {
		d.Preview = u.opts.Preview()
	}
	f, err := ParseFilter(q.Get("path"), q.Get("status"))
	if err != nil {
		d.FilterErr = err.Error()
	}
	d.Filter = f
	c := u.store.Since(0)
	d.Seq = c.Seq
	for _, ex := range slices.Backward(c.Exchanges) {
		if f.Match(&ex) {
			d.Rows = append(d.Rows, u.shown(ex))
		}
	}
	code := http.StatusOK
	if raw := r.PathValue("id"); raw != "" {
		if ex, ok := u.lookup(raw); ok {
			v := newDetailView(u.shown(ex), u.forwarder != nil)
			d.Selected = &v
		} else {
			d.Missing, code = raw, http.StatusNotFound
		}
	}
	u.render(w, code, "page", d)
}

// detailFragment is the detail pane alone, for the page's script.
func (u *ui) detailFragment(w http.ResponseWriter, r *http.Request) {
	ex, ok := u.lookup(r.PathValue("id"))
	if !ok {
		u.render(w, http.StatusNotFound, "missing", r.PathValue("id"))
		return
	}
	u.render(w, http.StatusOK, "detail", newDetailView(u.shown(ex), u.forwarder != nil))
}

// replayForm is replay for the page without script: answer with the new
// exchange's page.
func (u *ui) replayForm(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		http.Error(w, "no such exchange", http.StatusNotFound)
		return
	}
	res, err := u.replay(r.Context(), id)
	if err != nil {
		http.Error(w, err.Error(), replayErrorCode(err))
		return
	}
	http.Redirect(w, r, "/exchanges/"+strconv.FormatUint(res.ID, 10), http.StatusSeeOther)
}

func (u *ui) lookup(raw string) (Exchange, bool) {
	id, err := strconv.ParseUint(raw, 10, 64)
	if err != nil {
		return Exchange{}, false
	}
	return u.store.Get(id)
}

// render executes a template into memory first, so a failure cannot leave
// half a page behind a 200.
func (u *ui) render(w http.ResponseWriter, code int, name string, data any) {
	var b bytes.Buffer
	if err := u.tmpl.ExecuteTemplate(&b, name, data); err != nil {
		http.Error(w, "inspector: rendering "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(b.Bytes())
}
