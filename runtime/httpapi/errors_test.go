package httpapi

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// TestErrorCodes_golden pins every domain error's status and code: clients program
// against them, so a change must be deliberate (go test -run ErrorCodes -update).
func TestErrorCodes_golden(t *testing.T) {
	var b strings.Builder
	seen := map[string]bool{}
	for _, d := range domainErrors {
		status, body, ok := classify(fmt.Errorf("wrapped: %w", d.err))
		if !ok || status != d.status || body.Code != d.code {
			t.Fatalf("classify(%v) = %d %+v %v", d.err, status, body, ok)
		}
		line := fmt.Sprintf("%d %s\n", status, body.Code)
		if !seen[line] {
			seen[line] = true
			b.WriteString(line)
		}
	}
	if status, body, ok := classify(errors.New("boom")); ok || status != 500 || body.Code != "internal" || strings.Contains(body.Message, "boom") {
		t.Fatalf("unexpected error = %d %+v %v; want a 500 that hides the cause", status, body, ok)
	}
	path := filepath.Join("testdata", "error_codes.golden")
	if *update {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if b.String() != string(want) {
		t.Fatalf("error codes changed; if deliberate, run with -update\ngot:\n%s\nwant:\n%s", b.String(), want)
	}
	// Every code is documented in the OpenAPI Error schema.
	for line := range seen {
		code := strings.Fields(line)[1]
		if !strings.Contains(string(OpenAPI()), code) {
			t.Errorf("code %s is not in openapi.yaml", code)
		}
	}
}

// TestErrorCodes_enum: the OpenAPI Error schema lists its codes as an enum, which the web
// client's generated types turn into a table that must name every code; each domain
// error's code must be in it, and the enum must not repeat itself.
func TestErrorCodes_enum(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Enum []string `yaml:"enum"`
				} `yaml:"properties"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	enum := doc.Components.Schemas["Error"].Properties["code"].Enum
	if len(enum) == 0 {
		t.Fatal("Error.code has no enum in openapi.yaml")
	}
	listed := map[string]bool{}
	for _, c := range enum {
		if listed[c] {
			t.Errorf("code %s is listed twice", c)
		}
		listed[c] = true
	}
	for _, d := range domainErrors {
		if !listed[d.code] {
			t.Errorf("code %s (%v) is missing from the Error.code enum", d.code, d.err)
		}
	}
	for _, c := range []string{"invalid_json", "unknown_field", "body_too_large", "unsupported_media_type", "invalid_argument", "unauthorized", "invalid_token", "forbidden_origin", "internal"} {
		if !listed[c] {
			t.Errorf("edge code %s is missing from the Error.code enum", c)
		}
	}
}
