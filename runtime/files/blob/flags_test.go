package blob

import (
	"context"
	"errors"
	"flag"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

func TestFlagsOpen(t *testing.T) {
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr bool
		want    string // type of the store
	}{
		{"local", []string{"--files-dir", dir}, false, "*blob.Local"},
		{"s3", []string{"--files-backend", "s3", "--files-s3-endpoint", srv.URL, "--files-s3-bucket", "parley-b1", "--files-s3-access-key", "k", "--files-s3-secret-key", "secret"}, false, "*blob.S3"},
		{"unknown backend", []string{"--files-backend", "ftp"}, true, ""},
		{"endpoint without scheme", []string{"--files-backend", "s3", "--files-s3-endpoint", "s3.local:9000", "--files-s3-bucket", "b"}, true, ""},
		{"endpoint with a path", []string{"--files-backend", "s3", "--files-s3-endpoint", srv.URL + "/x", "--files-s3-bucket", "b"}, true, ""},
		{"no bucket", []string{"--files-backend", "s3", "--files-s3-endpoint", srv.URL}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f Flags
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			f.Register(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			s, err := f.Open(context.Background())
			if tc.wantErr {
				if !errors.Is(err, ErrBadFlags) {
					t.Fatalf("err = %v, want ErrBadFlags", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := typeName(s); got != tc.want {
				t.Fatalf("store %s, want %s", got, tc.want)
			}
			// The store works end to end.
			info, err := s.Put(context.Background(), strings.NewReader("hello"), -1)
			if err != nil {
				t.Fatal(err)
			}
			if st, err := s.Stat(context.Background(), info.ID); err != nil || st.Size != 5 {
				t.Fatalf("stat = %+v, %v", st, err)
			}
		})
	}
}

func typeName(s Store) string {
	switch s.(type) {
	case *Local:
		return "*blob.Local"
	case *S3:
		return "*blob.S3"
	}
	return "?"
}
