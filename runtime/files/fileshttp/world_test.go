package fileshttp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/runtime/files"
	"github.com/parleychat/parley/runtime/files/blob"
)

// tokens is the Authenticator seam: a fixed token → user table.
type tokens map[string]string

var errBadToken = errors.New("unknown token")

func (t tokens) UserID(_ context.Context, token string) (string, error) {
	if id, ok := t[token]; ok {
		return id, nil
	}
	return "", errBadToken
}

// rooms is the Sharing seam, a tiny model of what the chat and users packages decide:
// room membership, the files messages in each room reference, and blocks.
type rooms struct {
	mu       sync.Mutex
	members  map[string]map[string]bool // room → users
	attached map[string]map[string]bool // room → file ids referenced by a message
	blocks   map[[2]string]bool         // {blocker, blocked}
}

func newRooms() *rooms {
	return &rooms{members: map[string]map[string]bool{}, attached: map[string]map[string]bool{}, blocks: map[[2]string]bool{}}
}

func (r *rooms) join(room string, users ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.members[room] == nil {
		r.members[room] = map[string]bool{}
	}
	for _, u := range users {
		r.members[room][u] = true
	}
}

// send records a message in room referencing fileID.
func (r *rooms) send(room, fileID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.attached[room] == nil {
		r.attached[room] = map[string]bool{}
	}
	r.attached[room][fileID] = true
}

func (r *rooms) leave(room, user string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.members[room], user)
}

func (r *rooms) block(blocker, blocked string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.blocks[[2]string{blocker, blocked}] = true
}

func (r *rooms) CanRead(_ context.Context, userID string, f files.File) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.blocks[[2]string{userID, f.UploaderID}] || r.blocks[[2]string{f.UploaderID, userID}] {
		return false, nil
	}
	for room, ids := range r.attached {
		if ids[f.ID] && r.members[room][userID] {
			return true, nil
		}
	}
	return false, nil
}

func (r *rooms) Referenced(_ context.Context, fileID string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ids := range r.attached {
		if ids[fileID] {
			return true, nil
		}
	}
	return false, nil
}

// The worlds sign links as core does, from a JWT signing key.
var (
	testLinkKey = LinkKey([]byte("test signing key, thirty-two byte"))
	testLinkTTL = 10 * time.Minute
)

type backend string

const (
	backendLocal backend = "local"
	backendS3    backend = "s3"
)

// world is a running files API on a real blob store (a directory or an in-process
// S3-compatible server) with alice, bob, carol and dave: alice and bob share room
// "r1", dave is in it too but alice blocked him, carol is a stranger.
type world struct {
	t     *testing.T
	srv   *httptest.Server
	meta  *files.Memory
	blobs blob.Store
	rooms *rooms
	reg   *prometheus.Registry
	// leftovers lists what the blob store holds.
	leftovers func() []string
}

func newWorld(t *testing.T, be backend, cfg files.Config) *world {
	t.Helper()
	w := &world{t: t, meta: files.NewMemory(), rooms: newRooms()}
	switch be {
	case backendLocal:
		dir := t.TempDir()
		s, err := blob.NewLocal(dir)
		if err != nil {
			t.Fatal(err)
		}
		w.blobs = s
		w.leftovers = func() []string {
			var out []string
			err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					out = append(out, d.Name())
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
	case backendS3:
		fake := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
		t.Cleanup(fake.Close)
		u, _ := url.Parse(fake.URL)
		cfgS3 := blob.S3Config{Endpoint: u.Host, Bucket: "files", Region: "us-east-1", AccessKey: "k", SecretKey: "secret-key", PartSize: 5 << 20}
		s, err := blob.NewS3(cfgS3)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.EnsureBucket(context.Background()); err != nil {
			t.Fatal(err)
		}
		client, err := minio.New(u.Host, &minio.Options{Creds: credentialsFor(cfgS3), Region: "us-east-1"})
		if err != nil {
			t.Fatal(err)
		}
		w.blobs = s
		w.leftovers = func() []string {
			var out []string
			for o := range client.ListObjects(context.Background(), "files", minio.ListObjectsOptions{Recursive: true}) {
				if o.Err != nil {
					t.Fatal(o.Err)
				}
				out = append(out, o.Key)
			}
			return out
		}
	}
	w.reg = prometheus.NewRegistry()
	m, err := files.NewMetrics(w.reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Metrics = m
	svc := files.NewService(w.blobs, w.meta, w.rooms, w.rooms, cfg)
	auth := tokens{"tok-alice": "alice", "tok-bob": "bob", "tok-carol": "carol", "tok-dave": "dave"}
	w.srv = httptest.NewServer(New(svc, auth, WithSignedLinks(testLinkKey, testLinkTTL)))
	t.Cleanup(w.srv.Close)
	w.rooms.join("r1", "alice", "bob", "dave")
	w.rooms.join("r2", "carol")
	w.rooms.block("alice", "dave")
	return w
}

// request sends a request as user ("" for anonymous).
func (w *world) request(method, path, user string, body io.Reader, hdr map[string]string) *http.Response {
	w.t.Helper()
	req, err := http.NewRequest(method, w.srv.URL+path, body)
	if err != nil {
		w.t.Fatal(err)
	}
	if user != "" {
		req.Header.Set("Authorization", "Bearer tok-"+user)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := w.srv.Client().Do(req)
	if err != nil {
		w.t.Fatalf("%s %s: %v", method, path, err)
	}
	w.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// upload PUTs body raw with a name and claimed type and expects 201.
func (w *world) upload(user, name, claimedType string, body []byte) FileJSON {
	w.t.Helper()
	resp := w.request(http.MethodPut, Prefix+"?name="+url.QueryEscape(name), user, bytes.NewReader(body), map[string]string{"Content-Type": claimedType})
	if resp.StatusCode != http.StatusCreated {
		w.t.Fatalf("upload: %d %s", resp.StatusCode, readAll(w.t, resp))
	}
	return decode[FileJSON](w.t, resp)
}

func multipartBody(t *testing.T, fieldsBefore map[string]string, name, claimedType string, data []byte) (io.Reader, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for k, v := range fieldsBefore {
		if err := mw.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	h := make(map[string][]string)
	h["Content-Disposition"] = []string{`form-data; name="file"; filename="` + name + `"`}
	h["Content-Type"] = []string{claimedType}
	part, err := mw.CreatePart(h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := part.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return &b, mw.FormDataContentType()
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func decode[T any](t *testing.T, resp *http.Response) T {
	t.Helper()
	var v T
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("decode %T: %v", v, err)
	}
	return v
}

// wantError checks a JSON error response.
func wantError(t *testing.T, resp *http.Response, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d (%s)", resp.StatusCode, status, readAll(t, resp))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error content type %q", ct)
	}
	e := decode[ErrorJSON](t, resp)
	if e.Code != code || e.Message == "" {
		t.Fatalf("error %+v, want code %s and a message", e, code)
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

var epoch = time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)

func credentialsFor(c blob.S3Config) *credentials.Credentials {
	return credentials.NewStaticV4(c.AccessKey, c.SecretKey, "")
}

// counter returns a counter's value; reason selects the label of the rejection counter.
func (w *world) counter(name, reason string) float64 {
	w.t.Helper()
	mfs, err := w.reg.Gather()
	if err != nil {
		w.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := reason == ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					match = true
				}
			}
			if match {
				return m.GetCounter().GetValue()
			}
		}
	}
	w.t.Fatalf("no counter %s{reason=%q}", name, reason)
	return 0
}
