package main

import (
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func pushCommand(args []string) error {
	if len(args) < 2 {
		return errors.New("usage: mkimage push REF TARBALL [TARBALL...]")
	}
	ref, err := name.ParseReference(args[0])
	if err != nil {
		return fmt.Errorf("parse %q: %w", args[0], err)
	}
	idx, err := multiPlatform(args[1:])
	if err != nil {
		return err
	}
	if err := remote.WriteIndex(ref, idx, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("pushed %s@%s (%d platforms)\n", ref.Name(), digest, len(args)-1)
	return nil
}

// digestCommand prints the digest of the index push would write for the
// tarballs: the images are deterministic, so it is the pushed digest.
func digestCommand(args []string) error {
	if len(args) < 1 {
		return errors.New("usage: mkimage digest TARBALL [TARBALL...]")
	}
	idx, err := multiPlatform(args)
	if err != nil {
		return err
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Println(digest)
	return nil
}

// multiPlatform returns an index over the images of the tarballs, each
// described by the platform of its config; two images for one platform are
// refused, since a node could then pull either.
func multiPlatform(tarballs []string) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.DockerManifestList)
	seen := map[string]string{}
	for _, path := range tarballs {
		img, err := tarball.ImageFromPath(path, nil)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("read the config of %s: %w", path, err)
		}
		plat := v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
		if prev, ok := seen[plat.String()]; ok {
			return nil, fmt.Errorf("%s and %s are both %s", prev, path, plat.String())
		}
		seen[plat.String()] = path
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &plat},
		})
	}
	return idx, nil
}
