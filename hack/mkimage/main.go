// Command mkimage builds a minimal single-layer container image and writes it
// as a docker-archive tarball (the format `docker load` and
// `ctr -n k8s.io images import` accept), without needing Docker or BuildKit.
//
// It is a module of its own (hack/mkimage/go.mod), so the plugin's go.mod
// holds none of go-containerregistry's dependencies. Usage, from the
// repository's top (paths relative to hack/mkimage, absolute ones are
// simplest):
//
//	go -C hack/mkimage run . -o OUT.tar -t REF [-entrypoint /path] \
//	    [-platform linux/amd64] [-user 65532:65532] [-env K=V ...] DEST=SRC [DEST=SRC...]
//
// The image starts from scratch (empty.Image) and gets exactly one layer that
// holds every SRC file at the absolute path DEST (mode 0755, owned by root),
// the parent directories of those files (0755) and a world-writable /tmp
// (1777). The config carries the entrypoint, a non-root user by default, the
// platform and a fixed creation time; layer entries use a fixed timestamp and
// are sorted, so the same inputs always give the same image digest.
//
// Example:
//
//	CGO_ENABLED=0 go -C cmd/intercept-demo build -o /tmp/intercept-demo .
//	go -C hack/mkimage run . -o /tmp/demo.tar -t localhost/kubectl-intercept/demo:0.1.0 \
//	    -entrypoint /intercept-demo /intercept-demo=/tmp/intercept-demo
//
// `mkimage push REF TARBALL...` pushes single-platform tarballs made this way
// as one multi-platform image (an index with one manifest per tarball) to a
// registry, with the credentials of $HOME/.docker/config.json; the release
// runs it once per version. `mkimage digest TARBALL...` prints the digest
// that push would give the image, without a registry: the release builds
// the plugin with it, so the plugin references its sidecar by digest.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// epoch is the fixed timestamp used for layer entries and the image config.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// file is one regular file to put into the layer.
type file struct {
	dest string // absolute path inside the image, without leading slash
	src  string // path on the local filesystem
}

func main() {
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "push":
		err = pushCommand(os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "digest":
		err = digestCommand(os.Args[2:])
	default:
		err = run()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		out        = flag.String("o", "", "output docker-archive tarball (required)")
		tag        = flag.String("t", "", "image reference to record in the tarball, e.g. localhost/demo:0.1.0 (required)")
		entrypoint = flag.String("entrypoint", "", "entrypoint path inside the image (default: DEST of the first file)")
		platform   = flag.String("platform", "linux/"+runtime.GOARCH, "image platform os/arch[/variant]")
		user       = flag.String("user", "65532:65532", "user[:group] the container runs as")
		workdir    = flag.String("workdir", "/", "working directory")
		env        stringList
	)
	flag.Var(&env, "env", "environment variable K=V for the image config (repeatable)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: mkimage -o OUT.tar -t REF [flags] DEST=SRC [DEST=SRC...]\n")
		flag.PrintDefaults()
	}
	flag.Parse()

	if *out == "" || *tag == "" || flag.NArg() == 0 {
		flag.Usage()
		return fmt.Errorf("-o, -t and at least one DEST=SRC are required")
	}
	ref, err := name.ParseReference(*tag)
	if err != nil {
		return fmt.Errorf("parse -t %q: %w", *tag, err)
	}
	plat, err := v1.ParsePlatform(*platform)
	if err != nil {
		return fmt.Errorf("parse -platform %q: %w", *platform, err)
	}

	var (
		files []file
		dests []string // recorded in the history; SRC paths are left out so they do not change the digest
	)
	for _, arg := range flag.Args() {
		dest, src, ok := strings.Cut(arg, "=")
		if !ok || dest == "" || src == "" {
			return fmt.Errorf("argument %q is not DEST=SRC", arg)
		}
		if !path.IsAbs(dest) {
			return fmt.Errorf("destination %q must be an absolute path", dest)
		}
		files = append(files, file{dest: strings.TrimPrefix(path.Clean(dest), "/"), src: src})
		dests = append(dests, path.Clean(dest))
	}
	if *entrypoint == "" {
		*entrypoint = "/" + files[0].dest
	}

	layerTar, err := buildLayer(files)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return fmt.Errorf("create layer: %w", err)
	}

	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: epoch},
			CreatedBy: "mkimage",
			Comment:   "files: " + strings.Join(dests, " "),
		},
	})
	if err != nil {
		return fmt.Errorf("append layer: %w", err)
	}

	cfg, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	cfg = cfg.DeepCopy()
	cfg.Created = v1.Time{Time: epoch}
	cfg.OS = plat.OS
	cfg.Architecture = plat.Architecture
	cfg.Variant = plat.Variant
	cfg.Config.Entrypoint = []string{*entrypoint}
	cfg.Config.Cmd = nil
	cfg.Config.User = *user
	cfg.Config.WorkingDir = *workdir
	cfg.Config.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return fmt.Errorf("set config: %w", err)
	}

	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	if err := tarball.WriteToFile(*out, ref, img); err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s: %s %s (%s)\n", *out, ref.Name(), digest, plat)
	return nil
}

// buildLayer returns an uncompressed tar holding the files, their parent
// directories and /tmp, in sorted order with fixed metadata.
func buildLayer(files []file) ([]byte, error) {
	dirs := map[string]int64{"tmp": 0o1777}
	seen := map[string]string{}
	for _, f := range files {
		if prev, ok := seen[f.dest]; ok {
			return nil, fmt.Errorf("destination /%s given twice (%s and %s)", f.dest, prev, f.src)
		}
		seen[f.dest] = f.src
		for d := path.Dir(f.dest); d != "."; d = path.Dir(d) {
			if _, ok := dirs[d]; !ok {
				dirs[d] = 0o755
			}
		}
	}
	for _, f := range files {
		if _, ok := dirs[f.dest]; ok {
			return nil, fmt.Errorf("destination /%s is also used as a directory", f.dest)
		}
	}

	type entry struct {
		name string
		dir  bool
		mode int64
		src  string
	}
	var entries []entry
	for d, mode := range dirs {
		entries = append(entries, entry{name: d, dir: true, mode: mode})
	}
	for _, f := range files {
		entries = append(entries, entry{name: f.dest, mode: 0o755, src: f.src})
	}
	// Sorting by name puts every directory before its contents.
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{
			Name:    e.name,
			Mode:    e.mode,
			ModTime: epoch,
			Uname:   "root",
			Gname:   "root",
		}
		if e.dir {
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
			if err := tw.WriteHeader(hdr); err != nil {
				return nil, err
			}
			continue
		}
		data, err := os.ReadFile(e.src)
		if err != nil {
			return nil, err
		}
		hdr.Typeflag = tar.TypeReg
		hdr.Size = int64(len(data))
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
