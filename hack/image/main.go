// Command image builds the container image without a Docker engine (`make image`): the
// Dockerfile's final stage around a static `parley` binary, written as an OCI image layout
// and a `docker load` tarball. SOURCE_DATE_EPOCH fixes the creation time and every mtime.
//
//	go run ./hack/image --binary bin/image/parley --version v0.1.0 \
//	  --layout bin/image/oci --tarball bin/image/parley.tar --tag parley:v0.1.0
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/parleychat/parley/internal/image"
)

func main() {
	var o image.Options
	var layoutDir, tarFile, tag string
	flag.StringVar(&o.Binary, "binary", "", "the static parley binary (CGO_ENABLED=0 GOOS=linux)")
	flag.StringVar(&o.CACerts, "ca-certs", image.DefaultCACerts, "CA bundle copied to "+image.CACertsPath)
	flag.StringVar(&o.Version, "version", "", "version for the "+image.LabelVersion+" label")
	flag.StringVar(&o.Revision, "revision", "", "VCS revision for the "+image.LabelRevision+" label (optional)")
	flag.StringVar(&o.OS, "os", "linux", "image OS")
	flag.StringVar(&o.Arch, "arch", "amd64", "image architecture (GOARCH of the binary)")
	flag.StringVar(&layoutDir, "layout", "", "write an OCI image layout to this directory (replaced if it holds one)")
	flag.StringVar(&tarFile, "tarball", "", "write a `docker load` tarball to this file")
	flag.StringVar(&tag, "tag", "parley:latest", "image name and tag for the tarball (the tag is the layout's ref name)")
	flag.Parse()

	if err := run(o, layoutDir, tarFile, tag); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(o image.Options, layoutDir, tarFile, tag string) error {
	if layoutDir == "" && tarFile == "" {
		return fmt.Errorf("image: nothing to write: give --layout and/or --tarball")
	}
	if err := image.CheckBinary(o.Binary, o.Arch); err != nil {
		return err
	}
	created, err := image.CreatedFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	o.Created = created
	img, err := image.Build(o)
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	if layoutDir != "" {
		if err := image.WriteLayout(layoutDir, img, image.RefName(tag)); err != nil {
			return err
		}
		fmt.Printf("OCI layout: %s (ref %s)\n", layoutDir, image.RefName(tag))
	}
	if tarFile != "" {
		if err := image.WriteTarball(tarFile, img, tag); err != nil {
			return err
		}
		fmt.Printf("tarball:    %s (docker load -i %s; tagged %s)\n", tarFile, tarFile, tag)
	}
	fmt.Printf("image:      %s/%s, created %s\n", o.OS, o.Arch, created.Format("2006-01-02T15:04:05Z"))
	fmt.Printf("digest:     %s\n", digest)
	return nil
}
