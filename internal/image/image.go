// Package image builds Parley's container image without a Docker engine: the final stage of
// the Dockerfile (scratch, Debian's CA roots, the static `parley` binary, a world-writable
// /tmp, user 65532, entrypoint /parley) as an OCI image whose bytes depend only on its
// inputs, written as an OCI image layout and as a `docker load` tarball.
package image

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// What the Dockerfile's final stage says; TestDockerfileEquivalence holds the two together.
const (
	// User is the image's user and group: the distroless "nonroot" ids, with no passwd entry.
	User = "65532:65532"
	// BinaryPath is where the binary lands, and the entrypoint.
	BinaryPath = "/parley"
	// CACertsPath is where the CA roots land (Go's crypto/x509 looks there first on Linux).
	CACertsPath = "/etc/ssl/certs/ca-certificates.crt"
	// TmpPath is the only writable directory, sticky and world-writable like a Debian /tmp.
	TmpPath = "/tmp"
	// DefaultCACerts is the host bundle Debian's ca-certificates package maintains, the
	// same file the Dockerfile copies from its Debian-based build stage.
	DefaultCACerts = "/etc/ssl/certs/ca-certificates.crt"
	// PathEnv is the PATH BuildKit gives an image built FROM scratch.
	PathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// Label keys the image carries.
const (
	LabelTitle    = "org.opencontainers.image.title"
	LabelVersion  = "org.opencontainers.image.version"
	LabelRevision = "org.opencontainers.image.revision"
)

// Entrypoint is the image's ENTRYPOINT.
func Entrypoint() []string { return []string{BinaryPath} }

// Cmd is the image's CMD: with no role given, the container prints the usage.
func Cmd() []string { return []string{"--help"} }

// Entry is one path the Dockerfile's final stage copies into the image.
type Entry struct {
	Path   string      // absolute path in the image
	Mode   fs.FileMode // permission and sticky bits, plus fs.ModeDir for a directory
	Source string      // the host file a regular file is copied from; empty for a directory
}

// Contents lists what the image holds, in the Dockerfile's COPY order. Parent directories
// are implied (0755, as COPY creates them).
func Contents(binary, caCerts string) []Entry {
	return []Entry{
		{Path: CACertsPath, Mode: 0o644, Source: caCerts},
		{Path: BinaryPath, Mode: 0o755, Source: binary},
		{Path: TmpPath, Mode: fs.ModeDir | fs.ModeSticky | 0o777},
	}
}

// Options are the inputs of an image; equal options give an image with the same digest.
type Options struct {
	Binary   string    // a static `parley` for OS/Arch (CheckBinary says whether it is)
	CACerts  string    // PEM bundle of CA roots, DefaultCACerts unless set
	Version  string    // the binary's version, for the org.opencontainers.image.version label
	Revision string    // the VCS revision, optional label
	Created  time.Time // the image's creation time and every file's mtime (SOURCE_DATE_EPOCH); the Unix epoch if zero
	OS       string    // "linux" unless set
	Arch     string    // "amd64" unless set
}

func (o *Options) defaults() error {
	if o.Binary == "" {
		return errors.New("image: no binary")
	}
	if o.Version == "" {
		return errors.New("image: no version")
	}
	if o.CACerts == "" {
		o.CACerts = DefaultCACerts
	}
	if o.OS == "" {
		o.OS = "linux"
	}
	if o.Arch == "" {
		o.Arch = "amd64"
	}
	if o.Created.IsZero() {
		o.Created = time.Unix(0, 0)
	}
	o.Created = o.Created.UTC().Truncate(time.Second)
	return nil
}

// Build assembles the image: one layer with Contents, an OCI manifest and config.
func Build(o Options) (v1.Image, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := WriteLayer(&buf, Contents(o.Binary, o.CACerts), o.Created); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("image: layer: %w", err)
	}

	created := v1.Time{Time: o.Created}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   created,
			CreatedBy: "hack/image: COPY ca-certificates.crt /etc/ssl/certs/, parley /parley, tmp /tmp",
			Comment:   "the Dockerfile's final stage, built without a Docker engine",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("image: append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image: config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = o.OS, o.Arch
	cf.Created = created
	labels := map[string]string{LabelTitle: "parley", LabelVersion: o.Version}
	if o.Revision != "" {
		labels[LabelRevision] = o.Revision
	}
	cf.Config = v1.Config{
		User:       User,
		Entrypoint: Entrypoint(),
		Cmd:        Cmd(),
		Env:        []string{PathEnv},
		Labels:     labels,
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("image: config: %w", err)
	}
	return img, nil
}

// WriteLayer writes the layer's tar: every entry and its parent directories, sorted, owned
// by 0:0 with no user or group names, modified at mtime.
func WriteLayer(w io.Writer, entries []Entry, mtime time.Time) error {
	type item struct {
		hdr *tar.Header
		src string
	}
	items := map[string]item{}
	dir := func(name string, mode fs.FileMode) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: tarMode(mode), ModTime: mtime}
	}
	for _, e := range entries {
		if !path.IsAbs(e.Path) || path.Clean(e.Path) != e.Path || e.Path == "/" {
			return fmt.Errorf("image: entry path %q is not a clean absolute path", e.Path)
		}
		name := strings.TrimPrefix(e.Path, "/")
		for p := path.Dir(name); p != "."; p = path.Dir(p) {
			if _, ok := items[p]; !ok {
				items[p] = item{hdr: dir(p, fs.ModeDir|0o755)}
			}
		}
		if e.Mode.IsDir() {
			items[name] = item{hdr: dir(name, e.Mode)}
			continue
		}
		if !e.Mode.IsRegular() {
			return fmt.Errorf("image: %s: only regular files and directories are supported", e.Path)
		}
		fi, err := os.Stat(e.Source)
		if err != nil {
			return fmt.Errorf("image: %s: %w", e.Path, err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("image: %s: source %s is not a regular file", e.Path, e.Source)
		}
		items[name] = item{
			hdr: &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: tarMode(e.Mode), Size: fi.Size(), ModTime: mtime},
			src: e.Source,
		}
	}
	names := make([]string, 0, len(items))
	for n := range items {
		names = append(names, n)
	}
	sort.Strings(names)

	tw := tar.NewWriter(w)
	for _, n := range names {
		it := items[n]
		if err := tw.WriteHeader(it.hdr); err != nil {
			return fmt.Errorf("image: %s: %w", n, err)
		}
		if it.src == "" {
			continue
		}
		if err := copyFile(tw, it.src, it.hdr.Size); err != nil {
			return fmt.Errorf("image: %s: %w", n, err)
		}
	}
	return tw.Close()
}

func copyFile(w io.Writer, src string, size int64) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, size))
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("%s changed while being read", src)
	}
	return nil
}

// tarMode turns a Go file mode into tar's mode bits (permissions plus setuid, setgid, sticky).
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	return mode
}

// CheckBinary reports whether path is a statically linked ELF executable for arch (a
// dynamically linked one would fail on scratch with a puzzling "no such file").
func CheckBinary(path, arch string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("image: %s: %w", path, err)
	}
	defer f.Close()
	want, ok := map[string]elf.Machine{
		"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "386": elf.EM_386,
		"arm": elf.EM_ARM, "ppc64le": elf.EM_PPC64, "s390x": elf.EM_S390, "riscv64": elf.EM_RISCV,
	}[arch]
	if !ok {
		return fmt.Errorf("image: unsupported architecture %q", arch)
	}
	if f.Machine != want {
		return fmt.Errorf("image: %s is built for %s, not %s", path, f.Machine, arch)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("image: %s is dynamically linked; build it with CGO_ENABLED=0", path)
		}
	}
	return nil
}

// CreatedFromEnv reads SOURCE_DATE_EPOCH (reproducible-builds.org); unset means the Unix epoch.
func CreatedFromEnv(getenv func(string) string) (time.Time, error) {
	s := strings.TrimSpace(getenv("SOURCE_DATE_EPOCH"))
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	secs, err := strconv.ParseInt(s, 10, 64)
	if err != nil || secs < 0 {
		return time.Time{}, fmt.Errorf("image: SOURCE_DATE_EPOCH=%q: want seconds since the epoch", s)
	}
	return time.Unix(secs, 0).UTC(), nil
}

// WriteLayout writes img as the only image of an OCI image layout in dir, replacing a
// layout already there, with ref as its org.opencontainers.image.ref.name (a tag such as
// the version; `skopeo copy oci:DIR:REF ...` picks it by that name).
func WriteLayout(dir string, img v1.Image, ref string) error {
	if err := clearLayout(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("image: layout %s: %w", dir, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	opts := []layout.Option{layout.WithPlatform(v1.Platform{OS: cf.OS, Architecture: cf.Architecture})}
	if ref != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref}))
	}
	if err := p.AppendImage(img, opts...); err != nil {
		return fmt.Errorf("image: layout %s: %w", dir, err)
	}
	return nil
}

// clearLayout removes an earlier layout at dir; it refuses to remove anything else.
func clearLayout(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(ents) == 0 {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		return fmt.Errorf("image: %s exists and is not an OCI image layout; not replacing it", dir)
	}
	return os.RemoveAll(dir)
}

// WriteTarball writes img as a `docker load` tarball tagged tag (such as parley:v0.1.0).
func WriteTarball(file string, img v1.Image, tag string) error {
	t, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("image: tag %q: %w", tag, err)
	}
	if err := tarball.WriteToFile(file, t, img); err != nil {
		return fmt.Errorf("image: %s: %w", file, err)
	}
	return nil
}

// RefName is the tag of an image reference ("parley:v0.1.0" gives "v0.1.0"), "latest" when
// it has none: the ref name an OCI layout records.
func RefName(ref string) string {
	if t, err := name.NewTag(ref); err == nil {
		return t.TagStr()
	}
	return "latest"
}
