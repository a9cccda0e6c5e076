package main

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// plugin is the part of a krew manifest these tests look at.
type plugin struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version          string     `json:"version"`
		ShortDescription string     `json:"shortDescription"`
		Platforms        []platform `json:"platforms"`
	} `json:"spec"`
}

type platform struct {
	Selector struct {
		MatchLabels map[string]string `json:"matchLabels"`
	} `json:"selector"`
	URI    string `json:"uri"`
	Sha256 string `json:"sha256"`
	Bin    string `json:"bin"`
}

const (
	templateFile = "../../.krew.yaml"
	indexFile    = "../../plugins/intercept.yaml"
)

// validate runs krew's own manifest validator (sigs.k8s.io/krew's
// validate-krew-manifest, pinned in hack/tools/krew) on a manifest file: the
// rules krew-index applies to a pull request (name matches the file, a
// one-line short description, uri/sha256/bin on every platform, selectors
// that match a platform and do not overlap). It does not install: the URIs
// are release URLs; TestSnapshotManifest and make krew-install-test install
// from local archives.
func validate(t *testing.T, manifest string) {
	t.Helper()
	bin := os.Getenv("KREW_VALIDATE")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "validate-krew-manifest")
		build := exec.Command("go", "build", "-o", bin, "sigs.k8s.io/krew/cmd/validate-krew-manifest")
		build.Dir = "../tools/krew"
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build krew's validator: %v\n%s", err, out)
		}
	}
	abs, err := filepath.Abs(manifest)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-manifest", abs, "-skip-install").CombinedOutput()
	if err != nil {
		t.Fatalf("krew rejects %s: %v\n%s", manifest, err, out)
	}
}

func parse(t *testing.T, text []byte) plugin {
	t.Helper()
	var p plugin
	if err := yaml.Unmarshal(text, &p); err != nil {
		t.Fatalf("parse manifest: %v", err)
	}
	return p
}

var shaLine = regexp.MustCompile(`(?m)^(\s*sha256: )[0-9a-f]{64}$`)

// The manifest kept for krew-index is valid for krew and is what the
// release bot renders from .krew.yaml for its version (sha256 aside: that
// comes from the release's archives).
func TestIndexManifest(t *testing.T) {
	indexText, err := os.ReadFile(indexFile)
	if err != nil {
		t.Fatal(err)
	}
	validate(t, indexFile)

	index := parse(t, indexText)
	tmpl, err := os.ReadFile(templateFile)
	if err != nil {
		t.Fatal(err)
	}
	zero := strings.Repeat("0", 64)
	rendered, err := render(string(tmpl), index.Spec.Version, func(string) (string, error) { return zero, nil })
	if err != nil {
		t.Fatal(err)
	}
	want := string(rendered)
	got := shaLine.ReplaceAllString(string(indexText), "${1}"+zero)
	if got != want {
		t.Errorf("plugins/intercept.yaml differs from .krew.yaml rendered for %s; regenerate it with\n"+
			"  make snapshot && go run ./hack/krewmanifest -tag %s -o plugins/intercept.yaml\n--- got\n%s\n--- want\n%s",
			index.Spec.Version, index.Spec.Version, got, want)
	}
}

// metadata is what GoReleaser writes to dist/metadata.json.
type metadata struct {
	Version string `json:"version"`
}

// artifact is one entry of dist/artifacts.json.
type artifact struct {
	Name string `json:"name"`
	Path string `json:"path"`
	Type string `json:"type"`
	ID   string `json:"id"`
}

// Rendering .krew.yaml for a snapshot build's tag gives a manifest krew
// accepts whose every platform is an archive of that build (sha256 as in
// checksums.txt, holding the binary it names and the LICENSE krew-index
// requires), and every archive of the build is a platform.
func TestSnapshotManifest(t *testing.T) {
	dist := os.Getenv("RELEASE_DIST")
	if dist == "" {
		t.Skip("needs a snapshot build: run make release-test (or make snapshot, then RELEASE_DIST=dist)")
	}
	dist, err := filepath.Abs(dist)
	if err != nil {
		t.Fatal(err)
	}
	var meta metadata
	readJSON(t, filepath.Join(dist, "metadata.json"), &meta)
	tag := "v" + meta.Version

	tmpl, err := os.ReadFile(templateFile)
	if err != nil {
		t.Fatal(err)
	}
	text, err := render(string(tmpl), tag, localArchive(dist))
	if err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(t.TempDir(), "intercept.yaml")
	if err := os.WriteFile(manifest, text, 0o644); err != nil {
		t.Fatal(err)
	}
	if out := os.Getenv("KREW_MANIFEST_OUT"); out != "" {
		if err := os.WriteFile(out, text, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	validate(t, manifest)

	sums := checksums(t, filepath.Join(dist, "checksums.txt"))
	p := parse(t, text)
	if p.Spec.Version != tag {
		t.Errorf("spec.version = %q, want %q", p.Spec.Version, tag)
	}
	var named []string
	for _, pl := range p.Spec.Platforms {
		file := path.Base(pl.URI)
		named = append(named, file)
		osArch := pl.Selector.MatchLabels["os"] + "_" + pl.Selector.MatchLabels["arch"]
		if !strings.Contains(file, "_"+osArch+".") {
			t.Errorf("platform %s points at %s", osArch, file)
		}
		if sums[file] != pl.Sha256 {
			t.Errorf("%s: manifest sha256 %s, checksums.txt %s", file, pl.Sha256, sums[file])
		}
		entries := archiveEntries(t, filepath.Join(dist, file))
		for _, want := range []string{pl.Bin, "LICENSE"} {
			if !slices.Contains(entries, want) {
				t.Errorf("%s holds %v, not %s", file, entries, want)
			}
		}
	}

	var arts []artifact
	readJSON(t, filepath.Join(dist, "artifacts.json"), &arts)
	var archives []string
	for _, a := range arts {
		if a.Type == "Archive" {
			archives = append(archives, a.Name)
		}
	}
	slices.Sort(named)
	slices.Sort(archives)
	if !slices.Equal(named, archives) {
		t.Errorf("manifest platforms %v, snapshot archives %v", named, archives)
	}
}

func readJSON(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run make snapshot first)", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// checksums reads GoReleaser's checksums.txt: "<sha256>  <file>" per line.
func checksums(t *testing.T, file string) map[string]string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }() // opened for reading
	sums := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if sum, name, ok := strings.Cut(sc.Text(), "  "); ok {
			sums[name] = sum
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return sums
}

// archiveEntries lists the regular files of a .tar.gz or .zip.
func archiveEntries(t *testing.T, file string) []string {
	t.Helper()
	var names []string
	if strings.HasSuffix(file, ".zip") {
		z, err := zip.OpenReader(file)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = z.Close() }() // opened for reading
		for _, f := range z.File {
			if !f.FileInfo().IsDir() {
				names = append(names, f.Name)
			}
		}
		return names
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }() // opened for reading
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if h.Typeflag == tar.TypeReg {
			names = append(names, h.Name)
		}
	}
}
