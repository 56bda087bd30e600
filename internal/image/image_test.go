package image_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/parleychat/parley/internal/image"
)

const testVersion = "v0.0.0-imagetest"

// TestImageRunsFromUnpackedRoot builds the image around a freshly built binary, reads it
// back from the OCI layout and the tarball, checks every layer entry and the config, unpacks
// it and runs its entrypoint from the unpacked root: as the image's user inside a chroot
// when this process may chroot (root, as in CI), else straight from the unpacked path with
// TMPDIR at the root's /tmp.
func TestImageRunsFromUnpackedRoot(t *testing.T) {
	// Under CI the image must be run, never skipped.
	skip := func(why string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot run the image under CI: %s", why)
		}
		t.Skip(why)
	}
	if runtime.GOOS != "linux" {
		skip("the image is linux; this test runs its binary")
	}
	if testing.Short() {
		skip("builds the parley binary (-short)")
	}
	binary := buildParley(t)
	if err := image.CheckBinary(binary, runtime.GOARCH); err != nil {
		t.Fatalf("the binary is not fit for scratch: %v", err)
	}
	ca := caBundle(t)
	created := time.Unix(1700000000, 0).UTC()
	img, err := image.Build(image.Options{
		Binary: binary, CACerts: ca, Version: testVersion, Revision: "0123456789ab",
		Created: created, Arch: runtime.GOARCH,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := digestOf(t, img)

	out := t.TempDir()
	layoutDir, tarFile := filepath.Join(out, "oci"), filepath.Join(out, "parley.tar")
	if err := image.WriteLayout(layoutDir, img, testVersion); err != nil {
		t.Fatal(err)
	}
	if err := image.WriteTarball(tarFile, img, "parley:"+testVersion); err != nil {
		t.Fatal(err)
	}

	// The layout: one manifest, with the platform and the ref name; the same digest.
	idx, err := layout.ImageIndexFromPath(layoutDir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("layout index holds %d manifests, want 1", len(im.Manifests))
	}
	desc := im.Manifests[0]
	if desc.Digest != want {
		t.Errorf("layout manifest digest %s, built %s", desc.Digest, want)
	}
	if got := desc.Annotations["org.opencontainers.image.ref.name"]; got != testVersion {
		t.Errorf("layout ref name %q, want %q", got, testVersion)
	}
	if desc.Platform == nil || desc.Platform.OS != "linux" || desc.Platform.Architecture != runtime.GOARCH {
		t.Errorf("layout platform %+v, want linux/%s", desc.Platform, runtime.GOARCH)
	}
	fromLayout, err := idx.Image(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	// The tarball: the same image under its tag.
	tag, err := name.NewTag("parley:" + testVersion)
	if err != nil {
		t.Fatal(err)
	}
	fromTar, err := tarball.ImageFromPath(tarFile, &tag)
	if err != nil {
		t.Fatal(err)
	}
	// A `docker load` tarball keeps the config and the layers, not the manifest.
	if got, want := configName(t, fromTar), configName(t, img); got != want {
		t.Errorf("tarball image config %s, built %s", got, want)
	}
	if got, want := layerDigests(t, fromTar), layerDigests(t, img); !reflect.DeepEqual(got, want) {
		t.Errorf("tarball image layers %v, built %v", got, want)
	}

	cfg := checkManifestAndConfig(t, fromLayout, created)

	// Every entry of the layer: type, mode, owner, mtime, content.
	root := t.TempDir()
	entries := unpack(t, fromLayout, root)
	wantEntries := []entry{
		{"etc/", tar.TypeDir, 0o755, ""},
		{"etc/ssl/", tar.TypeDir, 0o755, ""},
		{"etc/ssl/certs/", tar.TypeDir, 0o755, ""},
		{"etc/ssl/certs/ca-certificates.crt", tar.TypeReg, 0o644, ca},
		{"parley", tar.TypeReg, 0o755, binary},
		{"tmp/", tar.TypeDir, 0o1777, ""},
	}
	if len(entries) != len(wantEntries) {
		t.Errorf("layer entries:\n%s\nwant:\n%s", headerNames(entries), entryNames(wantEntries))
	}
	for i := 0; i < len(entries) && i < len(wantEntries); i++ {
		h, w := entries[i], wantEntries[i]
		if h.Name != w.name || h.Typeflag != w.typ || h.Mode != w.mode {
			t.Errorf("entry %d: %s type %c mode %#o, want %s type %c mode %#o", i, h.Name, h.Typeflag, h.Mode, w.name, w.typ, w.mode)
		}
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner %d:%d (%q:%q), want 0:0 with no names", h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if !h.ModTime.Equal(created) {
			t.Errorf("%s: mtime %s, want %s", h.Name, h.ModTime, created)
		}
		if w.source != "" && !sameContent(t, w.source, filepath.Join(root, h.Name)) {
			t.Errorf("%s differs from %s", h.Name, w.source)
		}
	}

	// Run the entrypoint from the unpacked root.
	r := newRunner(t, root, cfg)
	t.Logf("running the entrypoint %s", r.mode())

	stdout, stderr, code := r.run(t) // the default CMD: usage
	if code != 0 || !strings.Contains(stdout, "parley <role> --help") {
		t.Errorf("default command %v %v: exit %d\nstdout: %s\nstderr: %s", cfg.Entrypoint, cfg.Cmd, code, stdout, stderr)
	}
	stdout, stderr, code = r.run(t, "version")
	if code != 0 || !strings.HasPrefix(stdout, "parley "+testVersion+" ") {
		t.Errorf("parley version: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	r.dev(t)
}

type entry struct {
	name   string
	typ    byte
	mode   int64
	source string
}

func entryNames(es []entry) string {
	var b strings.Builder
	for _, e := range es {
		b.WriteString("  " + e.name + "\n")
	}
	return b.String()
}

func headerNames(hs []*tar.Header) string {
	var b strings.Builder
	for _, h := range hs {
		b.WriteString("  " + h.Name + "\n")
	}
	return b.String()
}

// checkManifestAndConfig checks the media types, the history and the config, and returns it.
func checkManifestAndConfig(t *testing.T, img v1.Image, created time.Time) v1.Config {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("media types: manifest %s, config %s; want OCI", m.MediaType, m.Config.MediaType)
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != types.OCILayer {
		t.Errorf("layers %+v, want one %s", m.Layers, types.OCILayer)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s, want linux/%s", cf.OS, cf.Architecture, runtime.GOARCH)
	}
	if !cf.Created.Time.Equal(created) {
		t.Errorf("created %s, want %s", cf.Created.Time, created)
	}
	if len(cf.History) != 1 || !cf.History[0].Created.Time.Equal(created) || cf.History[0].EmptyLayer {
		t.Errorf("history %+v, want one entry for the layer, created %s", cf.History, created)
	}
	if len(cf.RootFS.DiffIDs) != 1 {
		t.Errorf("rootfs diff ids %v, want 1", cf.RootFS.DiffIDs)
	}
	c := cf.Config
	if c.User != "65532:65532" {
		t.Errorf("User %q, want 65532:65532", c.User)
	}
	if !reflect.DeepEqual(c.Entrypoint, []string{"/parley"}) || !reflect.DeepEqual(c.Cmd, []string{"--help"}) {
		t.Errorf("Entrypoint %q Cmd %q, want [/parley] [--help]", c.Entrypoint, c.Cmd)
	}
	if !reflect.DeepEqual(c.Env, []string{image.PathEnv}) {
		t.Errorf("Env %q, want [%s]", c.Env, image.PathEnv)
	}
	wantLabels := map[string]string{
		image.LabelTitle: "parley", image.LabelVersion: testVersion, image.LabelRevision: "0123456789ab",
	}
	if !reflect.DeepEqual(c.Labels, wantLabels) {
		t.Errorf("Labels %v, want %v", c.Labels, wantLabels)
	}
	if c.WorkingDir != "" || len(c.ExposedPorts) != 0 || len(c.Volumes) != 0 {
		t.Errorf("config has more than the Dockerfile says: %+v", c)
	}
	return c
}

// unpack extracts every layer into root (in order; the builder writes no whiteouts, so one
// is an error here) and returns the headers, in archive order.
func unpack(t *testing.T, img v1.Image, root string) []*tar.Header {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var headers []*tar.Header
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			headers = append(headers, h)
			clean := filepath.Clean(h.Name)
			if filepath.IsAbs(h.Name) || clean == ".." || strings.HasPrefix(clean, "../") {
				t.Fatalf("layer entry %q escapes the root", h.Name)
			}
			if strings.HasPrefix(filepath.Base(clean), ".wh.") {
				t.Fatalf("layer entry %q is a whiteout", h.Name)
			}
			dst := filepath.Join(root, clean)
			mode := h.FileInfo().Mode()
			switch h.Typeflag {
			case tar.TypeDir:
				if err := os.MkdirAll(dst, 0o755); err != nil {
					t.Fatal(err)
				}
			case tar.TypeReg:
				f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := io.Copy(f, tr); err != nil {
					t.Fatal(err)
				}
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
			default:
				t.Fatalf("layer entry %q has type %c; the image holds files and directories only", h.Name, h.Typeflag)
			}
			if err := os.Chmod(dst, mode&(fs.ModePerm|fs.ModeSticky|fs.ModeSetuid|fs.ModeSetgid)); err != nil {
				t.Fatal(err)
			}
			if os.Geteuid() == 0 {
				if err := os.Lchown(dst, h.Uid, h.Gid); err != nil {
					t.Fatal(err)
				}
			}
		}
		rc.Close()
	}
	return headers
}

// runner starts the image's entrypoint from an unpacked root, as a container runtime would:
// argv from Entrypoint and Cmd, env from the config, and (in a chroot) the config's user.
type runner struct {
	root   string
	cfg    v1.Config
	chroot bool
	uid    uint32
	gid    uint32
}

func newRunner(t *testing.T, root string, cfg v1.Config) *runner {
	t.Helper()
	r := &runner{root: root, cfg: cfg}
	u, g, ok := strings.Cut(cfg.User, ":")
	uid, err1 := strconv.ParseUint(u, 10, 32)
	gid, err2 := strconv.ParseUint(g, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		t.Fatalf("User %q is not numeric uid:gid (a scratch image has no /etc/passwd)", cfg.User)
	}
	r.uid, r.gid = uint32(uid), uint32(gid)
	if os.Geteuid() != 0 {
		return r
	}
	// Root may still lack CAP_SYS_CHROOT (a rootless container): try once.
	r.chroot = true
	cmd := r.command(context.Background(), "version")
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Logf("chroot into the unpacked root failed (%v); running from the unpacked path instead", err)
			r.chroot = false
		}
	}
	return r
}

func (r *runner) mode() string {
	if r.chroot {
		return "in a chroot at the unpacked root as " + r.cfg.User
	}
	return "from the unpacked path " + r.root + " as the current user, TMPDIR at the root's /tmp"
}

func (r *runner) command(ctx context.Context, args ...string) *exec.Cmd {
	argv := append([]string{}, r.cfg.Entrypoint...)
	if len(args) == 0 {
		argv = append(argv, r.cfg.Cmd...)
	} else {
		argv = append(argv, args...)
	}
	env := append([]string{}, r.cfg.Env...)
	var cmd *exec.Cmd
	if r.chroot {
		cmd = exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Chroot:     r.root,
			Credential: &syscall.Credential{Uid: r.uid, Gid: r.gid, Groups: []uint32{}},
		}
		env = append(env, "HOME=/")
	} else {
		cmd = exec.CommandContext(ctx, filepath.Join(r.root, argv[0]), argv[1:]...)
		cmd.Dir = r.root
		tmp := filepath.Join(r.root, "tmp")
		env = append(env, "TMPDIR="+tmp, "HOME="+tmp)
	}
	cmd.Env = env
	return cmd
}

func (r *runner) run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var o, e bytes.Buffer
	cmd := r.command(ctx, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	return o.String(), e.String(), code
}

var runningAt = regexp.MustCompile(`running at (http://\S+?)/?\s`)

// dev starts `parley dev` on a port of its choosing, waits for /readyz 200, fetches /, and
// stops it with SIGTERM, expecting a clean exit.
func (r *runner) dev(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := r.command(ctx, "dev", "--listen", "127.0.0.1:0")
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			if m := runningAt.FindStringSubmatch(sc.Text() + " "); m != nil {
				select {
				case urls <- m[1]:
				default:
				}
			}
		}
		exited <- cmd.Wait()
	}()
	stop := func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			return err
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			return errors.New("did not stop within 30s of SIGTERM")
		}
	}

	var base string
	select {
	case base = <-urls:
	case err := <-exited:
		t.Fatalf("parley dev exited before serving: %v\nstderr: %s", err, stderr.String())
	case <-time.After(60 * time.Second):
		_ = stop()
		t.Fatalf("parley dev printed no URL within 60s\nstderr: %s", stderr.String())
	}

	client := &http.Client{Timeout: 5 * time.Second}
	ready := false
	deadline := time.Now().Add(60 * time.Second)
	for !ready && time.Now().Before(deadline) {
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			ready = resp.StatusCode == http.StatusOK
			resp.Body.Close()
		}
		if !ready {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if !ready {
		_ = stop()
		t.Fatalf("%s/readyz never answered 200 within 60s\nstderr: %s", base, stderr.String())
	}
	resp, err := client.Get(base + "/")
	if err != nil {
		t.Errorf("GET /: %v", err)
	} else {
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET / = %d, want 200 (the web client, or the page that says how to build it)", resp.StatusCode)
		}
		resp.Body.Close()
	}
	if err := stop(); err != nil {
		t.Errorf("parley dev after SIGTERM: %v\nstderr: %s", err, stderr.String())
	}

	// In the chroot, the role ran as the image's user and wrote only under /tmp.
	if r.chroot {
		fi, err := os.Stat(filepath.Join(r.root, "tmp", "parley-dev"))
		if err != nil {
			t.Errorf("parley dev left no files directory under the image's /tmp: %v", err)
		} else if st, ok := fi.Sys().(*syscall.Stat_t); ok && (st.Uid != r.uid || st.Gid != r.gid) {
			t.Errorf("/tmp/parley-dev is owned by %d:%d, want %d:%d", st.Uid, st.Gid, r.uid, r.gid)
		}
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// buildParley builds a static binary as `make image` does (CGO off, trimmed paths, stamped).
func buildParley(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	out := filepath.Join(t.TempDir(), "parley")
	cmd := exec.Command(gobin, "build", "-trimpath",
		"-ldflags", "-s -w -X github.com/parleychat/parley/internal/version.Version="+testVersion,
		"-o", out, ".")
	cmd.Dir = moduleRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	start := time.Now()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	t.Logf("built parley in %s", time.Since(start).Round(time.Second))
	return out
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// caBundle is Debian's bundle when the machine has it, else a stand-in file.
func caBundle(t *testing.T) string {
	t.Helper()
	if fi, err := os.Stat(image.DefaultCACerts); err == nil && fi.Mode().IsRegular() {
		return image.DefaultCACerts
	}
	t.Logf("%s missing (install ca-certificates); using a stand-in bundle", image.DefaultCACerts)
	p := filepath.Join(t.TempDir(), "ca-certificates.crt")
	if err := os.WriteFile(p, []byte("# stand-in CA bundle\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func digestOf(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func configName(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	h, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func layerDigests(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []v1.Hash
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

func sameContent(t *testing.T, a, b string) bool {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}
