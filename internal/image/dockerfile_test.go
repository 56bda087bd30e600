package image_test

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/parleychat/parley/internal/image"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int
	cmd  string // upper case
	args string
}

type stage struct {
	from, name string
	ins        []instruction
}

// parseDockerfile splits a Dockerfile into stages. Enough of the syntax for this repository's
// Dockerfile: comments, line continuations, FROM ... AS name.
func parseDockerfile(text string) ([]stage, error) {
	var stages []stage
	var cur strings.Builder
	start := 0
	flush := func() error {
		s := strings.TrimSpace(cur.String())
		cur.Reset()
		if s == "" {
			return nil
		}
		cmd, args, _ := strings.Cut(s, " ")
		in := instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			st := stage{}
			for len(f) > 0 && strings.HasPrefix(f[0], "--") {
				f = f[1:]
			}
			if len(f) == 0 {
				return fmt.Errorf("line %d: FROM without an image", in.line)
			}
			st.from = f[0]
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
			return nil
		}
		if len(stages) == 0 {
			if in.cmd == "ARG" {
				return nil
			}
			return fmt.Errorf("line %d: %s before FROM", in.line, in.cmd)
		}
		stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, in)
		return nil
	}
	for i, raw := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(raw)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() > 0) {
			continue // comments (also inside continuations) and blank continuation lines
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if body, ok := strings.CutSuffix(strings.TrimRight(raw, " \t"), "\\"); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(raw)
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return stages, nil
}

// dockerImage is what the Dockerfile's final stage produces, as far as this test models it.
type dockerImage struct {
	user       string
	entrypoint []string
	cmd        []string
	// files maps each path COPY creates to whether it is a directory and its mode, when
	// the source stage sets one with chmod (0 otherwise).
	files map[string]dockerFile
}

type dockerFile struct {
	dir  bool
	mode int64
	src  string
}

// finalStage models the Dockerfile's final stage; problems lists what it cannot model
// (which the builder then does not mirror either).
func finalStage(text string) (out dockerImage, problems []string) {
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	stages, err := parseDockerfile(text)
	if err != nil {
		bad("%v", err)
		return out, problems
	}
	if len(stages) == 0 {
		bad("the Dockerfile has no stage")
		return out, problems
	}
	byName := map[string]stage{}
	for _, s := range stages {
		if s.name != "" {
			byName[s.name] = s
		}
	}
	last := stages[len(stages)-1]
	if last.from != "scratch" {
		bad("the final stage is FROM %s; the builder makes a scratch image (teach internal/image about a base, or keep scratch)", last.from)
	}
	out.files = map[string]dockerFile{}
	for _, in := range last.ins {
		switch in.cmd {
		case "COPY":
			f := strings.Fields(in.args)
			var from string
			for len(f) > 0 && strings.HasPrefix(f[0], "--") {
				flag, val, _ := strings.Cut(f[0], "=")
				if flag != "--from" {
					bad("line %d: COPY %s: the builder does not mirror it (mirror it in internal/image, then here)", in.line, flag)
				}
				from = val
				f = f[1:]
			}
			if len(f) < 2 || strings.HasPrefix(f[0], "[") {
				bad("line %d: COPY %s: want sources and a destination (shell form)", in.line, in.args)
				continue
			}
			srcs, dst := f[:len(f)-1], f[len(f)-1]
			for _, src := range srcs {
				if strings.ContainsAny(src, "*?[") {
					bad("line %d: COPY %s: wildcards are not modelled", in.line, src)
					continue
				}
				dest := dst
				if strings.HasSuffix(dst, "/") || len(srcs) > 1 {
					dest = path.Join(dst, path.Base(src))
				}
				df := dockerFile{src: src}
				if st, ok := byName[from]; ok {
					df.dir, df.mode = madeInStage(st, src)
				}
				out.files[path.Clean(dest)] = df
			}
		case "USER":
			out.user = in.args
		case "ENTRYPOINT", "CMD":
			var v []string
			if err := json.Unmarshal([]byte(in.args), &v); err != nil {
				bad("line %d: %s %s: want the exec (JSON) form, as the builder writes it", in.line, in.cmd, in.args)
			}
			if in.cmd == "CMD" {
				out.cmd = v
			} else {
				out.entrypoint = v
			}
		default:
			bad("line %d: the final stage has %s, which internal/image does not mirror: add it to the builder and to this test, or drop it", in.line, in.cmd)
		}
	}
	return out, problems
}

// madeInStage says whether a stage's RUN lines create src as a directory (mkdir) and which
// mode they chmod it to.
func madeInStage(st stage, src string) (dir bool, mode int64) {
	q := regexp.QuoteMeta(src)
	mkdir := regexp.MustCompile(`mkdir\s+(-\S+\s+)*` + q + `(\s|;|&|$)`)
	chmod := regexp.MustCompile(`chmod\s+([0-7]{3,4})\s+` + q + `(\s|;|&|$)`)
	for _, in := range st.ins {
		if in.cmd != "RUN" {
			continue
		}
		if mkdir.MatchString(in.args) {
			dir = true
		}
		if m := chmod.FindStringSubmatch(in.args); m != nil {
			fmt.Sscanf(m[1], "%o", &mode)
		}
	}
	return dir, mode
}

// TestDockerfileEquivalence holds the Dockerfile's final stage and the daemonless builder
// together: the same base (scratch), user, entrypoint, cmd and files (with the modes the
// Dockerfile sets), so changing one without the other fails here.
func TestDockerfileEquivalence(t *testing.T) {
	text, err := os.ReadFile(filepath.Join(moduleRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	img := fakeImage(t)
	for _, p := range differences(t, string(text), img) {
		t.Error(p)
	}
}

// TestDockerfileEquivalenceCatchesDrift edits a copy of the Dockerfile the ways a change to
// one side only would, and expects each to be reported.
func TestDockerfileEquivalenceCatchesDrift(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(moduleRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	img := fakeImage(t)
	edits := map[string][2]string{
		"user":        {"USER 65532:65532", "USER 1000:1000"},
		"entrypoint":  {`ENTRYPOINT ["/parley"]`, `ENTRYPOINT ["/bin/parley"]`},
		"cmd":         {`CMD ["--help"]`, `CMD ["dev"]`},
		"shell cmd":   {`CMD ["--help"]`, `CMD --help`},
		"no cmd":      {`CMD ["--help"]`, ``},
		"extra file":  {"COPY --from=build /out/parley /parley", "COPY --from=build /out/parley /parley\nCOPY --from=build /out/parley /usr/bin/parley"},
		"moved file":  {"COPY --from=build /out/parley /parley", "COPY --from=build /out/parley /bin/parley"},
		"chown":       {"COPY --from=build /out/tmp /tmp", "COPY --from=build --chown=65532:65532 /out/tmp /tmp"},
		"tmp mode":    {"chmod 1777 /out/tmp", "chmod 0777 /out/tmp"},
		"env":         {"USER 65532:65532", "ENV TZ=UTC\nUSER 65532:65532"},
		"workdir":     {"USER 65532:65532", "WORKDIR /tmp\nUSER 65532:65532"},
		"base":        {"FROM scratch", "FROM gcr.io/distroless/static"},
		"dropped tmp": {"COPY --from=build /out/tmp /tmp", ""},
	}
	for name, e := range edits {
		t.Run(name, func(t *testing.T) {
			if !strings.Contains(text, e[0]) {
				t.Fatalf("the Dockerfile no longer holds %q; update this test", e[0])
			}
			edited := strings.Replace(text, e[0], e[1], 1)
			if len(differences(t, edited, img)) == 0 {
				t.Errorf("editing %q to %q went unnoticed", e[0], e[1])
			}
		})
	}
}

// fakeImage builds the image around stand-in files: the equivalence is about layout and
// config, not about what the binary does.
func fakeImage(t *testing.T) v1.Image {
	t.Helper()
	dir := t.TempDir()
	binary := filepath.Join(dir, "parley")
	ca := filepath.Join(dir, "ca-certificates.crt")
	if err := os.WriteFile(binary, []byte("#!/bin/false\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca, []byte("# CA roots\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := image.Build(image.Options{Binary: binary, CACerts: ca, Version: testVersion})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// differences lists where the image and the Dockerfile's final stage disagree: user,
// entrypoint, cmd, the file set (COPY destinations and the directories they imply), types,
// owners and the modes the Dockerfile sets.
func differences(t *testing.T, dockerfile string, img v1.Image) []string {
	t.Helper()
	want, diffs := finalStage(dockerfile)
	bad := func(format string, a ...any) { diffs = append(diffs, fmt.Sprintf(format, a...)) }
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != want.user {
		bad("User: image %q, Dockerfile %q", cf.Config.User, want.user)
	}
	if !reflect.DeepEqual(cf.Config.Entrypoint, want.entrypoint) {
		bad("Entrypoint: image %q, Dockerfile %q", cf.Config.Entrypoint, want.entrypoint)
	}
	if !reflect.DeepEqual(cf.Config.Cmd, want.cmd) {
		bad("Cmd: image %q, Dockerfile %q", cf.Config.Cmd, want.cmd)
	}

	wantSet := map[string]bool{}
	for p, f := range want.files {
		wantSet[p] = f.dir
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if _, ok := wantSet[d]; !ok {
				wantSet[d] = true
			}
		}
	}
	got := layerEntries(t, img)
	if !reflect.DeepEqual(keys(got), keys(wantSet)) {
		bad("files: image %v, Dockerfile %v", keys(got), keys(wantSet))
	}
	for p, isDir := range wantSet {
		h, ok := got[p]
		if !ok {
			continue
		}
		if (h.Typeflag == tar.TypeDir) != isDir {
			bad("%s: image has type %c, Dockerfile makes it a directory: %v", p, h.Typeflag, isDir)
		}
		if h.Uid != 0 || h.Gid != 0 {
			bad("%s: owner %d:%d; COPY without --chown gives 0:0", p, h.Uid, h.Gid)
		}
		if f, ok := want.files[p]; ok && f.mode != 0 && h.Mode != f.mode {
			bad("%s: image mode %#o, Dockerfile chmods %s to %#o", p, h.Mode, f.src, f.mode)
		}
		if _, copied := want.files[p]; !copied && h.Mode != 0o755 {
			bad("%s: implied directory has mode %#o, COPY makes 0755", p, h.Mode)
		}
	}
	if len(want.entrypoint) > 0 {
		if h, ok := got[want.entrypoint[0]]; !ok || h.Typeflag != tar.TypeReg || h.Mode&0o111 == 0 {
			bad("the entrypoint %s is not an executable file of the image", want.entrypoint[0])
		}
	}
	// The COPY destinations are the builder's Contents, path for path.
	var contents []string
	for _, e := range image.Contents("parley", "ca-certificates.crt") {
		contents = append(contents, e.Path)
	}
	sort.Strings(contents)
	if !reflect.DeepEqual(contents, keys(want.files)) {
		bad("image.Contents %v, Dockerfile COPY destinations %v", contents, keys(want.files))
	}
	return diffs
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// layerEntries reads the image's layers into a map from absolute path to header.
func layerEntries(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*tar.Header{}
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
			out[path.Clean("/"+h.Name)] = h
		}
		rc.Close()
	}
	return out
}

func TestParseDockerfile(t *testing.T) {
	stages, err := parseDockerfile(`# comment
ARG X=1
FROM golang:1 AS build
RUN mkdir -p /out/tmp && \
    # a comment inside
    chmod 1777 /out/tmp
FROM scratch
COPY --from=build /out/tmp /tmp
USER 1:2
ENTRYPOINT ["/a", "b"]
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) != 2 || stages[0].name != "build" || stages[1].from != "scratch" {
		t.Fatalf("stages %+v", stages)
	}
	dir, mode := madeInStage(stages[0], "/out/tmp")
	if !dir || mode != 0o1777 {
		t.Errorf("madeInStage = %v %#o, want true 01777", dir, mode)
	}
	if got := stages[1].ins[2]; got.cmd != "ENTRYPOINT" || got.args != `["/a", "b"]` || got.line != 10 {
		t.Errorf("ENTRYPOINT parsed as %+v", got)
	}
}

// TestBuildIsReproducible builds twice from the same inputs and compares digests and the
// written layouts byte for byte; a different time or version changes the digest.
func TestBuildIsReproducible(t *testing.T) {
	dir := t.TempDir()
	binary := filepath.Join(dir, "parley")
	if err := os.WriteFile(binary, []byte(strings.Repeat("parley\n", 1000)), 0o700); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(ca, []byte("# CA roots\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := image.Options{Binary: binary, CACerts: ca, Version: testVersion, Created: time.Unix(1700000000, 0)}
	build := func(o image.Options) v1.Hash {
		t.Helper()
		img, err := image.Build(o)
		if err != nil {
			t.Fatal(err)
		}
		return digestOf(t, img)
	}
	first := build(opts)
	// Host mtimes and modes do not leak in.
	if err := os.Chtimes(binary, time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(binary, 0o755); err != nil {
		t.Fatal(err)
	}
	if again := build(opts); again != first {
		t.Errorf("same inputs, digests %s and %s", first, again)
	}
	later := opts
	later.Created = opts.Created.Add(time.Second)
	if build(later) == first {
		t.Error("a different creation time gave the same digest")
	}
	other := opts
	other.Version = "v9.9.9"
	if build(other) == first {
		t.Error("a different version label gave the same digest")
	}

	// Two layouts written from two builds are identical files.
	layouts := [2]string{filepath.Join(dir, "a"), filepath.Join(dir, "b")}
	for _, l := range layouts {
		img, err := image.Build(opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := image.WriteLayout(l, img, testVersion); err != nil {
			t.Fatal(err)
		}
	}
	if a, b := treeOf(t, layouts[0]), treeOf(t, layouts[1]); !reflect.DeepEqual(a, b) {
		t.Errorf("layouts differ:\n%v\n%v", a, b)
	}
	// Writing over a layout replaces it; anything else is left alone.
	img, err := image.Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := image.WriteLayout(layouts[0], img, testVersion); err != nil {
		t.Fatal(err)
	}
	if a, b := treeOf(t, layouts[0]), treeOf(t, layouts[1]); !reflect.DeepEqual(a, b) {
		t.Errorf("rewritten layout differs:\n%v\n%v", a, b)
	}
	if err := image.WriteLayout(dir, img, testVersion); err == nil {
		t.Error("WriteLayout replaced a directory that is not an OCI layout")
	}
}

func treeOf(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = fmt.Sprintf("%x", b)
		if len(out[rel]) > 64 {
			out[rel] = fmt.Sprintf("%d bytes %x", len(b), b[:32])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCreatedFromEnv(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "SOURCE_DATE_EPOCH" {
				return v
			}
			return ""
		}
	}
	if got, err := image.CreatedFromEnv(env("")); err != nil || !got.Equal(time.Unix(0, 0)) {
		t.Errorf("unset: %v %v, want the epoch", got, err)
	}
	if got, err := image.CreatedFromEnv(env("1700000000")); err != nil || !got.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("1700000000: %v %v", got, err)
	}
	if _, err := image.CreatedFromEnv(env("yesterday")); err == nil {
		t.Error("a non-number was accepted")
	}
}

func TestCheckBinary(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "parley")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := image.CheckBinary(script, "amd64"); err == nil {
		t.Error("a shell script passed as the binary")
	}
	if image.RefName("parley:v1.2.3") != "v1.2.3" || image.RefName("registry.example:5000/parley") != "latest" {
		t.Errorf("RefName: %q %q", image.RefName("parley:v1.2.3"), image.RefName("registry.example:5000/parley"))
	}
}
