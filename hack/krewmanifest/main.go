// Command krewmanifest renders .krew.yaml, the krew-release-bot template,
// (minus its leading comment) into a krew-index manifest for one tag, as the bot does on a release, but
// taking each archive from a local directory (a GoReleaser dist/) instead of
// downloading it: the uri stays the release URL, the sha256 is the local
// file's.
//
//	go run ./hack/krewmanifest -tag v0.1.0 -dist dist > plugins/intercept.yaml
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"text/template"
)

func main() {
	var (
		tmpl = flag.String("template", ".krew.yaml", "krew-release-bot template")
		tag  = flag.String("tag", "", "release tag, e.g. v0.1.0 (required)")
		dist = flag.String("dist", "dist", "directory holding the release's archives")
		out  = flag.String("o", "-", "output file, - for stdout")
	)
	flag.Parse()
	if *tag == "" {
		fmt.Fprintln(os.Stderr, "krewmanifest: -tag is required")
		os.Exit(2)
	}
	text, err := os.ReadFile(*tmpl)
	if err == nil {
		text, err = render(string(text), *tag, localArchive(*dist))
	}
	if err == nil {
		if *out == "-" {
			_, err = os.Stdout.Write(text)
		} else {
			err = os.WriteFile(*out, text, 0o644)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "krewmanifest:", err)
		os.Exit(1)
	}
}

// shaFunc returns the sha256 (hex) of the archive a release URL names.
type shaFunc func(uri string) (string, error)

// render executes the template as krew-release-bot does: .TagName is the tag,
// and addURIAndSha URL TAG expands the URL (itself a template over .TagName)
// into the manifest's `uri:` and `sha256:` lines.
func render(text, tag string, sha shaFunc) ([]byte, error) {
	// The template's leading comment is about the template.
	for strings.HasPrefix(text, "#") {
		_, text, _ = strings.Cut(text, "\n")
	}
	data := struct{ TagName string }{tag}
	funcs := template.FuncMap{
		"addURIAndSha": func(url, tag string) (string, error) {
			t, err := template.New("uri").Parse(url)
			if err != nil {
				return "", fmt.Errorf("parse uri template %q: %w", url, err)
			}
			var uri bytes.Buffer
			if err := t.Execute(&uri, struct{ TagName string }{tag}); err != nil {
				return "", err
			}
			sum, err := sha(uri.String())
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("uri: %s\n    sha256: %s", uri.String(), sum), nil
		},
	}
	t, err := template.New(".krew.yaml").Funcs(funcs).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("parse the template: %w", err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("render the template for %s: %w", tag, err)
	}
	return buf.Bytes(), nil
}

// localArchive finds a release URL's archive in dir by its file name.
func localArchive(dir string) shaFunc {
	return func(uri string) (string, error) {
		file := filepath.Join(dir, path.Base(uri))
		f, err := os.Open(file)
		if err != nil {
			return "", fmt.Errorf("the manifest names %s, but %s has no such archive (make snapshot builds them): %w", uri, dir, err)
		}
		defer func() { _ = f.Close() }() // opened for reading: nothing to lose
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return "", fmt.Errorf("read %s: %w", file, err)
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	}
}
