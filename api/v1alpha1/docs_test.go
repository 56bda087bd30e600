package v1alpha1_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the field reference in docs/chatcluster.md")

const (
	crdPath   = "../../config/crd/bases/chat.parley.dev_chatclusters.yaml"
	docPath   = "../../docs/chatcluster.md"
	beginMark = "<!-- fields:begin (generated from the CRD by go test ./api/v1alpha1 -update) -->"
	endMark   = "<!-- fields:end -->"
)

// Kubernetes types embedded in the API are documented upstream; the reference names them
// instead of listing their fields.
var upstream = map[string]string{
	"resources":                 "[ResourceRequirements](https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#resources)",
	"env":                       "[EnvVar](https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#environment-variables) list",
	"affinity":                  "[Affinity](https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#scheduling)",
	"tolerations":               "[Toleration](https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#scheduling) list",
	"topologySpreadConstraints": "[TopologySpreadConstraint](https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#scheduling) list",
	"securityContext":           "[PodSecurityContext](https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#security-context)",
	"containerSecurityContext":  "[SecurityContext](https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#security-context-1)",
	"imagePullSecrets":          "[LocalObjectReference](https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/local-object-reference/) list",
	"conditions":                "[Condition](https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/condition/) list",
}

// TestFieldReferenceIsCurrent keeps docs/chatcluster.md's field tables equal to the
// generated CRD, so every field is documented and no description drifts.
func TestFieldReferenceIsCurrent(t *testing.T) {
	data, err := os.ReadFile(crdPath)
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(data, &crd); err != nil {
		t.Fatal(err)
	}
	root := crd.Spec.Versions[0].Schema.OpenAPIV3Schema
	var b strings.Builder
	b.WriteString("\n### Object-wide rules\n\n| Field | Type | Default | Validation | Description |\n|---|---|---|---|---|\n")
	rules(&b, "metadata", root)
	for _, top := range []string{"spec", "status"} {
		fmt.Fprintf(&b, "\n### `%s`\n\n", top)
		b.WriteString("| Field | Type | Default | Validation | Description |\n|---|---|---|---|---|\n")
		s := root.Properties[top]
		rules(&b, top, &s)
		walk(&b, top, &s)
	}
	generated := b.String()

	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	begin, end := bytes.Index(doc, []byte(beginMark)), bytes.Index(doc, []byte(endMark))
	if begin < 0 || end < begin {
		t.Fatalf("%s lacks the markers %q and %q", docPath, beginMark, endMark)
	}
	current := string(doc[begin+len(beginMark) : end])
	if current == generated {
		return
	}
	if !*update {
		t.Fatalf("the field reference in %s is stale: run go test ./api/v1alpha1 -update", filepath.Base(docPath))
	}
	out := append([]byte{}, doc[:begin+len(beginMark)]...)
	out = append(out, generated...)
	out = append(out, doc[end:]...)
	if err := os.WriteFile(docPath, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// rules lists an object's CEL rules as rows of their own.
func rules(b *strings.Builder, path string, s *apiextensionsv1.JSONSchemaProps) {
	for _, r := range s.XValidations {
		fmt.Fprintf(b, "| `%s` | rule | | `%s` | %s |\n", path, cell(r.Rule), cell(r.Message))
	}
}

func walk(b *strings.Builder, path string, s *apiextensionsv1.JSONSchemaProps) {
	names := make([]string, 0, len(s.Properties))
	for name := range s.Properties {
		names = append(names, name)
	}
	sort.Strings(names)
	required := map[string]bool{}
	for _, r := range s.Required {
		required[r] = true
	}
	for _, name := range names {
		p := s.Properties[name]
		field := path + "." + name
		typ := p.Type
		if p.Type == "array" && p.Items != nil && p.Items.Schema != nil {
			typ = p.Items.Schema.Type + " list"
		}
		if p.XIntOrString {
			typ = "int or string"
		}
		if up, ok := upstream[name]; ok {
			typ = up
		}
		if required[name] {
			typ += " (required)"
		}
		fmt.Fprintf(b, "| `%s` | %s | %s | %s | %s |\n", field, typ, defaultOf(&p), cell(validation(&p)), cell(p.Description))
		if _, ok := upstream[name]; ok {
			continue
		}
		rules(b, field, &p)
		if p.Type == "object" && len(p.Properties) > 0 {
			walk(b, field, &p)
		}
		if p.Type == "array" && p.Items != nil && p.Items.Schema != nil && len(p.Items.Schema.Properties) > 0 {
			walk(b, field+"[]", p.Items.Schema)
		}
	}
}

func defaultOf(p *apiextensionsv1.JSONSchemaProps) string {
	if p.Default == nil {
		return ""
	}
	return "`" + string(p.Default.Raw) + "`"
}

func validation(p *apiextensionsv1.JSONSchemaProps) string {
	var parts []string
	if p.Minimum != nil {
		parts = append(parts, "≥ "+strconv.FormatFloat(*p.Minimum, 'f', -1, 64))
	}
	if p.Maximum != nil {
		parts = append(parts, "≤ "+strconv.FormatFloat(*p.Maximum, 'f', -1, 64))
	}
	if p.MinLength != nil {
		parts = append(parts, fmt.Sprintf("length ≥ %d", *p.MinLength))
	}
	if p.MaxLength != nil {
		parts = append(parts, fmt.Sprintf("length ≤ %d", *p.MaxLength))
	}
	if p.MinItems != nil {
		parts = append(parts, fmt.Sprintf("items ≥ %d", *p.MinItems))
	}
	if p.MaxItems != nil {
		parts = append(parts, fmt.Sprintf("items ≤ %d", *p.MaxItems))
	}
	if len(p.Enum) > 0 {
		var vals []string
		for _, e := range p.Enum {
			var v any
			_ = json.Unmarshal(e.Raw, &v)
			vals = append(vals, fmt.Sprint(v))
		}
		parts = append(parts, "one of "+strings.Join(vals, ", "))
	}
	if p.Pattern != "" {
		parts = append(parts, "pattern `"+p.Pattern+"`")
	}
	if p.Items != nil && p.Items.Schema != nil && p.Items.Schema.Pattern != "" {
		parts = append(parts, "items match `"+p.Items.Schema.Pattern+"`")
	}
	return strings.Join(parts, "; ")
}

// cell makes text safe inside a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(s), " ")
}
