package protocol

import (
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The tests below keep schema/protocol-v1.schema.json (SchemaV1) and the Go frame types in
// step: the web client generates its types from the schema, so a field added on one side
// only would silently break it.

// schemaDef is the part of a schema definition the drift tests read.
type schemaDef struct {
	Title string `json:"title"`
	OneOf []struct {
		Ref string `json:"$ref"`
	} `json:"oneOf"`
	Enum                 []any                      `json:"enum"`
	Properties           map[string]json.RawMessage `json:"properties"`
	Required             []string                   `json:"required"`
	AdditionalProperties *bool                      `json:"additionalProperties"`
}

func schemaDefs(t *testing.T) map[string]schemaDef {
	t.Helper()
	var doc struct {
		ID   string               `json:"$id"`
		Defs map[string]schemaDef `json:"$defs"`
	}
	if err := json.Unmarshal([]byte(SchemaV1), &doc); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	if doc.ID != SchemaV1ID {
		t.Fatalf("schema $id = %q, SchemaV1ID = %q", doc.ID, SchemaV1ID)
	}
	return doc.Defs
}

// frameDefs maps the frame types of a union ($defs/ClientFrame or $defs/ServerFrame) to
// the names of their definitions.
func frameDefs(t *testing.T, defs map[string]schemaDef, union string) map[FrameType]string {
	t.Helper()
	out := map[FrameType]string{}
	for _, ref := range defs[union].OneOf {
		name, ok := strings.CutPrefix(ref.Ref, "#/$defs/")
		def, found := defs[name]
		if !ok || !found {
			t.Fatalf("$defs/%s: oneOf entry %q is not a local definition", union, ref.Ref)
		}
		var typ struct{ Const FrameType }
		if err := json.Unmarshal(def.Properties["type"], &typ); err != nil || typ.Const == "" {
			t.Fatalf("$defs/%s: property \"type\" is not a const string", name)
		}
		if prev, dup := out[typ.Const]; dup {
			t.Fatalf("$defs/%s: type %q already belongs to $defs/%s", name, typ.Const, prev)
		}
		out[typ.Const] = name
	}
	if len(out) == 0 {
		t.Fatalf("$defs/%s lists no frames", union)
	}
	return out
}

var compiled = struct {
	once sync.Once
	c    *jsonschema.Compiler
	err  error
}{}

// compileDef compiles one definition of SchemaV1, with "format" asserted (created_at).
func compileDef(t *testing.T, def string) *jsonschema.Schema {
	t.Helper()
	compiled.once.Do(func() {
		doc, err := jsonschema.UnmarshalJSON(strings.NewReader(SchemaV1))
		if err != nil {
			compiled.err = err
			return
		}
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		compiled.err = c.AddResource(SchemaV1ID, doc)
		compiled.c = c
	})
	if compiled.err != nil {
		t.Fatal(compiled.err)
	}
	sch, err := compiled.c.Compile(SchemaV1ID + "#/$defs/" + def)
	if err != nil {
		t.Fatalf("compile $defs/%s: %v", def, err)
	}
	return sch
}

// schemaAccepts validates raw against sch. Input that is not one JSON value in valid UTF-8
// is no instance at all, so the schema cannot accept it.
func schemaAccepts(sch *jsonschema.Schema, raw string) error {
	if !utf8.ValidString(raw) {
		return errors.New("not valid UTF-8, so not JSON")
	}
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(raw))
	if err != nil {
		return err
	}
	return sch.Validate(inst)
}

// jsonNames returns the JSON field names of struct type t, from its json tags.
func jsonNames(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.IsExported() && name != "-" {
			if name == "" {
				name = f.Name
			}
			names = append(names, name)
		}
	}
	return names
}

// diff returns the elements of a missing from b, sorted.
func diff[T comparable](a, b []T) []T {
	var out []T
	for _, x := range a {
		if !slices.Contains(b, x) && !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// declaredConstants returns the string constants of the named type declared in the
// package's non-test files, so that a constant added without listing it is noticed.
func declaredConstants(t *testing.T, typeName string) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != typeName {
					continue
				}
				for _, v := range vs.Values {
					lit, ok := v.(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Fatalf("%s: a %s constant is not a string literal", path, typeName)
					}
					s, _ := strconv.Unquote(lit.Value)
					out = append(out, s)
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("no constants of type %s found", typeName)
	}
	return out
}

func strs[T ~string](in []T) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = string(s)
	}
	return out
}

// The lists the drift tests compare against must themselves be complete.
func TestSchemaGoListsAreComplete(t *testing.T) {
	tests := []struct {
		typeName string
		listed   []string
		list     string
	}{
		{"FrameType", append(strs(ClientFrameTypes()), strs(ServerFrameTypes())...), "ClientFrameTypes() or ServerFrameTypes()"},
		{"ErrorCode", strs(ErrorCodes()), "ErrorCodes()"},
	}
	for _, tt := range tests {
		t.Run(tt.typeName, func(t *testing.T) {
			if missing := diff(declaredConstants(t, tt.typeName), tt.listed); len(missing) > 0 {
				t.Fatalf("%s constants %q are not in %s", tt.typeName, missing, tt.list)
			}
		})
	}
}

func TestSchemaFrameTypes(t *testing.T) {
	defs := schemaDefs(t)
	tests := []struct {
		union string
		want  []FrameType
		list  string
	}{
		{"ClientFrame", ClientFrameTypes(), "ClientFrameTypes()"},
		{"ServerFrame", ServerFrameTypes(), "ServerFrameTypes()"},
	}
	for _, tt := range tests {
		t.Run(tt.union, func(t *testing.T) {
			got := frameDefs(t, defs, tt.union)
			if missing := diff(tt.want, slices.Collect(maps.Keys(got))); len(missing) > 0 {
				t.Errorf("frame types %q of %s have no definition in $defs/%s", missing, tt.list, tt.union)
			}
			if extra := diff(slices.Collect(maps.Keys(got)), tt.want); len(extra) > 0 {
				t.Errorf("$defs/%s has frame types %q that %s does not list", tt.union, extra, tt.list)
			}
			for typ, name := range got {
				def := defs[name]
				// json2ts names the generated interface after the title.
				if def.Title != name {
					t.Errorf("$defs/%s (type %q): title %q, want %q", name, typ, def.Title, name)
				}
				if def.AdditionalProperties == nil || *def.AdditionalProperties {
					t.Errorf("$defs/%s: additionalProperties must be false", name)
				}
				if !slices.Contains(def.Required, "type") {
					t.Errorf("$defs/%s: \"type\" is not required", name)
				}
				for _, r := range def.Required {
					if _, ok := def.Properties[r]; !ok {
						t.Errorf("$defs/%s: required %q is not a property", name, r)
					}
				}
			}
		})
	}
}

func TestSchemaEnums(t *testing.T) {
	defs := schemaDefs(t)
	tests := []struct {
		def  string
		want []string
		from string
	}{
		{"ErrorCode", strs(ErrorCodes()), "protocol.ErrorCodes()"},
		{"ReceiptKind", declaredConstants(t, "ReceiptKind"), "the ReceiptKind constants"},
	}
	for _, tt := range tests {
		t.Run(tt.def, func(t *testing.T) {
			var got []string
			for _, v := range defs[tt.def].Enum {
				s, ok := v.(string)
				if !ok {
					t.Fatalf("$defs/%s: enum value %v is not a string", tt.def, v)
				}
				got = append(got, s)
			}
			if missing := diff(tt.want, got); len(missing) > 0 {
				t.Errorf("%s has %q, missing from $defs/%s.enum", tt.from, missing, tt.def)
			}
			if extra := diff(got, tt.want); len(extra) > 0 {
				t.Errorf("$defs/%s.enum has %q, not in %s", tt.def, extra, tt.from)
			}
		})
	}
}

// The schema must describe exactly the fields the Go structs carry, in each direction.
func TestSchemaFieldsMatchGoStructs(t *testing.T) {
	defs := schemaDefs(t)
	tests := []struct {
		union  string
		goType reflect.Type
	}{
		{"ClientFrame", reflect.TypeFor[ClientFrame]()},
		{"ServerFrame", reflect.TypeFor[ServerFrame]()},
	}
	for _, tt := range tests {
		t.Run(tt.union, func(t *testing.T) {
			var schemaFields []string
			where := map[string][]string{}
			for _, name := range frameDefs(t, defs, tt.union) {
				for p := range defs[name].Properties {
					schemaFields = append(schemaFields, p)
					where[p] = append(where[p], name)
				}
			}
			goFields := jsonNames(tt.goType)
			for _, f := range diff(goFields, schemaFields) {
				t.Errorf("field %q of Go protocol.%s (json tag) is a property of no frame in $defs/%s", f, tt.goType.Name(), tt.union)
			}
			for _, f := range diff(schemaFields, goFields) {
				t.Errorf("property %q of $defs/%v is no json tag of Go protocol.%s", f, where[f], tt.goType.Name())
			}
		})
	}
}

// serverFrameSamples are server frames built as the gateway and notification build them:
// with every optional field set, and with none.
func serverFrameSamples() []struct {
	name  string
	frame ServerFrame
} {
	created := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	full := &MessageDelivered{RoomID: "r1", SenderID: "alice", ClientID: "c1", ServerID: "m1", Seq: 7,
		Body: "hello", Attachments: []string{"f1", "f2"}, ReplyTo: "m0", Mentions: []string{"bob"}, SentAt: created, CreatedAt: created}
	bare := &MessageDelivered{RoomID: "r1", SenderID: "alice", ClientID: "c2", ServerID: "m2", Seq: 8, CreatedAt: created}
	hidden := MessageFrame(full)
	hidden.Hidden = true // as internal/bridge replays a message of a blocked sender
	withRoom := ErrorFrame(ErrorCode(ReasonNotMember), "not a member of room r1", FrameSend, "c1")
	withRoom.Room = "r1" // as notification reports a refused send
	online, offline := true, false
	return []struct {
		name  string
		frame ServerFrame
	}{
		{"ack", AckFrame(full)},
		{"message full", hidden},
		{"message bare", MessageFrame(bare)},
		{"message_updated edited", MessageUpdatedFrame(&MessageUpdated{RoomID: "r1", MessageID: "m1", Seq: 7, SenderID: "alice",
			ActorID: "alice", EventSeq: 3, Kind: UpdateEdit, Body: "hello!", Attachments: []string{"f1"}, EditedAt: &created,
			Reactions: []Reaction{{Emoji: "🎉", Count: 2, Users: []string{"bob", "carol"}}}, Mentions: []string{"carol"}, At: created})},
		{"message_updated deleted", MessageUpdatedFrame(&MessageUpdated{RoomID: "r1", MessageID: "m1", Seq: 7, SenderID: "alice",
			ActorID: "owner", EventSeq: 4, Kind: UpdateDelete, Deleted: true, At: created})},
		{"message_updated hidden", func() ServerFrame {
			f := MessageUpdatedFrame(&MessageUpdated{RoomID: "r1", MessageID: "m1", Seq: 7, SenderID: "alice",
				ActorID: "alice", EventSeq: 5, Kind: UpdateEdit, At: created})
			f.Hidden = true // as internal/bridge replays a change the viewer must not see
			return f
		}()},
		{"receipt full", ServerFrame{Type: FrameReceipt, Room: "r1", User: "bob", DeliveredSeq: 9, ReadSeq: 7}},
		{"receipt nothing read", ServerFrame{Type: FrameReceipt, Room: "r1", User: "bob", DeliveredSeq: 9}},
		{"typing", ServerFrame{Type: FrameTypingOut, Room: "r1", User: "bob"}},
		{"presence online", ServerFrame{Type: FramePresence, User: "bob", Online: &online}},
		{"presence offline", ServerFrame{Type: FramePresence, User: "bob", Online: &offline}},
		{"presence_batch", ServerFrame{Type: FramePresenceBatch, Presence: map[string]bool{"bob": true, "carol": false}}},
		{"error full", withRoom},
		{"error bare", ErrorFrame(CodeBadFrame, "frames are JSON text messages", "", "")},
		{"reconnect", ServerFrame{Type: FrameReconnect, Code: CodeShutdown, Message: "this gateway is shutting down", RetryAfterMS: 1000}},
		{"pong full", ServerFrame{Type: FramePong, ID: "p1"}},
		{"pong bare", ServerFrame{Type: FramePong}},
		{"resync", ServerFrame{Type: FrameResync}},
	}
}

func TestSchemaAcceptsServerFrames(t *testing.T) {
	byType := frameDefs(t, schemaDefs(t), "ServerFrame")
	union := compileDef(t, "ServerFrame")
	samples := serverFrameSamples()
	for _, code := range ErrorCodes() {
		samples = append(samples, struct {
			name  string
			frame ServerFrame
		}{"error " + string(code), ErrorFrame(code, "m", FrameSend, "c1")})
	}
	for _, tt := range samples {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := json.Marshal(tt.frame)
			if err != nil {
				t.Fatal(err)
			}
			// The frame's own definition first: its error names the offending field, where
			// the union's lists every alternative.
			name := byType[tt.frame.Type]
			if err := schemaAccepts(compileDef(t, name), string(raw)); err != nil {
				t.Fatalf("%s\nrefused by $defs/%s: %v", raw, name, err)
			}
			if err := schemaAccepts(union, string(raw)); err != nil {
				t.Fatalf("%s\nrefused by $defs/ServerFrame: %v", raw, err)
			}
		})
	}
}

// Every property the schema gives a server frame is one the Go code fills: together with
// additionalProperties:false (TestSchemaAcceptsServerFrames) the fields match per frame.
func TestSchemaServerFramePropertiesAreProduced(t *testing.T) {
	defs := schemaDefs(t)
	byType := frameDefs(t, defs, "ServerFrame")
	produced := map[FrameType][]string{}
	for _, tt := range serverFrameSamples() {
		raw, err := json.Marshal(tt.frame)
		if err != nil {
			t.Fatal(err)
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(raw, &fields); err != nil {
			t.Fatal(err)
		}
		for f := range fields {
			produced[tt.frame.Type] = append(produced[tt.frame.Type], f)
		}
	}
	for typ, name := range byType {
		if missing := diff(slices.Collect(maps.Keys(defs[name].Properties)), produced[typ]); len(missing) > 0 {
			t.Errorf("$defs/%s has properties %q that no Go-built %q frame carries (add them to serverFrameSamples, or drop them from the schema)", name, missing, typ)
		}
	}
}

// A server frame carrying a field the schema does not give it is refused: this is what
// catches a field added on the Go side only.
func TestSchemaRefusesUndeclaredServerFields(t *testing.T) {
	sch := compileDef(t, "ServerFrame")
	tests := []struct {
		name string
		raw  string
	}{
		{"pong with room", `{"type":"pong","room":"r1"}`},
		{"ack with sender", `{"type":"ack","id":"c","room":"r","message_id":"m","seq":1,"created_at":"2026-01-02T03:04:05Z","sender":"a"}`},
		{"unknown field", `{"type":"typing","room":"r","user":"u","edited":true}`},
		{"ack without seq", `{"type":"ack","id":"c","room":"r","message_id":"m","created_at":"2026-01-02T03:04:05Z"}`},
		{"bad time", `{"type":"ack","id":"c","room":"r","message_id":"m","seq":1,"created_at":"yesterday"}`},
		{"unknown error code", `{"type":"error","code":"teapot","message":"m"}`},
		{"client frame type", `{"type":"send","id":"c","room":"r"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if schemaAccepts(sch, tt.raw) == nil {
				t.Fatalf("$defs/ServerFrame accepts %s", tt.raw)
			}
		})
	}
}

// extraClientFrameCases are refusals the decoder tests do not list, for the limits the
// schema states.
func extraClientFrameCases() []clientFrameCase {
	long := strings.Repeat("x", MaxIDLength+1)
	attachments := `"` + strings.Repeat(`f","`, MaxAttachments) + `f"`
	var rooms strings.Builder
	for i := range MaxResumeRooms + 1 {
		if i > 0 {
			rooms.WriteByte(',')
		}
		rooms.WriteString(`"r` + strconv.Itoa(i) + `":0`)
	}
	watchUsers := `"` + strings.Repeat(`u","`, MaxWatchUsers) + `u"`
	return []clientFrameCase{
		{"send attachment of 128 bytes", `{"type":"send","id":"c","room":"r","attachments":["` + strings.Repeat("f", MaxIDLength) + `"]}`, ""},
		{"send too many attachments", `{"type":"send","id":"c","room":"r","attachments":[` + attachments + `]}`, CodeInvalid},
		{"send empty attachment", `{"type":"send","id":"c","room":"r","attachments":[""]}`, CodeInvalid},
		{"send long attachment", `{"type":"send","id":"c","room":"r","attachments":["` + long + `"]}`, CodeInvalid},
		{"send long room", `{"type":"send","id":"c","room":"` + long + `"}`, CodeInvalid},
		{"send body number", `{"type":"send","id":"c","room":"r","body":5}`, CodeBadFrame},
		{"send attachments string", `{"type":"send","id":"c","room":"r","attachments":"f"}`, CodeBadFrame},
		{"send unknown field", `{"type":"send","id":"c","room":"r","sender":"mallory"}`, CodeBadFrame},
		{"mark delivered", `{"type":"mark","room":"r","kind":"delivered","seq":9223372036854775807}`, ""},
		{"mark seq overflow", `{"type":"mark","room":"r","kind":"read","seq":9223372036854775808}`, CodeBadFrame},
		{"mark negative seq", `{"type":"mark","room":"r","kind":"read","seq":-1}`, CodeInvalid},
		{"mark no kind", `{"type":"mark","room":"r","seq":1}`, CodeInvalid},
		{"mark no seq", `{"type":"mark","room":"r","kind":"read"}`, CodeInvalid},
		{"resume without rooms", `{"type":"resume"}`, ""},
		{"resume too many rooms", `{"type":"resume","rooms":{` + rooms.String() + `}}`, CodeInvalid},
		{"resume empty room id", `{"type":"resume","rooms":{"":1}}`, CodeInvalid},
		{"resume long room id", `{"type":"resume","rooms":{"` + long + `":1}}`, CodeInvalid},
		{"resume seq string", `{"type":"resume","rooms":{"r":"1"}}`, CodeBadFrame},
		{"watch too many users", `{"type":"watch","users":[` + watchUsers + `]}`, CodeInvalid},
		{"watch long user", `{"type":"watch","users":["` + long + `"]}`, CodeInvalid},
		{"watch users string", `{"type":"watch","users":"u"}`, CodeBadFrame},
		{"ping empty id", `{"type":"ping","id":""}`, ""},
		{"ping long id", `{"type":"ping","id":"` + long + `"}`, CodeInvalid},
		{"ping unknown field", `{"type":"ping","at":1}`, CodeBadFrame},
		{"type not a string", `{"type":1}`, CodeBadFrame},
		{"unknown type", `{"type":"edit","id":"c"}`, CodeUnknownType},
	}
}

// The schema accepts what the decoder accepts and refuses what it refuses, on the
// decoder's tests, its fuzz seeds and the limits above (gaps: TestSchemaKnownGaps).
func TestSchemaAgreesWithDecoder(t *testing.T) {
	sch := compileDef(t, "ClientFrame")
	cases := append(clientFrameCases(), extraClientFrameCases()...)
	for i, seed := range clientFrameSeeds {
		_, err := DecodeClientFrame([]byte(seed))
		want := ErrorCode("")
		if err != nil {
			want = err.(*BadFrameError).Code
		}
		cases = append(cases, clientFrameCase{"seed " + strconv.Itoa(i), seed, want})
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			// The decoder's verdict is asserted too, so that a stale table fails here.
			_, decErr := DecodeClientFrame([]byte(tt.raw))
			if (decErr == nil) != (tt.want == "") {
				t.Fatalf("decoder: err = %v, want code %q", decErr, tt.want)
			}
			schErr := schemaAccepts(sch, tt.raw)
			switch {
			case decErr == nil && schErr != nil:
				t.Fatalf("decoder accepts %.200s\nbut $defs/ClientFrame refuses it: %v", tt.raw, schErr)
			case decErr != nil && schErr == nil:
				t.Fatalf("decoder refuses %.200s (%v)\nbut $defs/ClientFrame accepts it", tt.raw, decErr)
			}
		})
	}
}

// A property is required by the schema exactly when the decoder refuses a frame without it.
func TestSchemaClientRequiredMatchesDecoder(t *testing.T) {
	defs := schemaDefs(t)
	byType := frameDefs(t, defs, "ClientFrame")
	full := map[FrameType]string{
		FrameSend:   `{"type":"send","id":"c","room":"r","body":"hi","attachments":["f"],"reply_to":"m"}`,
		FrameTyping: `{"type":"typing","room":"r"}`,
		FrameMark:   `{"type":"mark","room":"r","kind":"read","seq":3}`,
		FrameResume: `{"type":"resume","rooms":{"r":2},"events":{"r":1}}`,
		FramePing:   `{"type":"ping","id":"p"}`,
		FrameWatch:  `{"type":"watch","users":["u"]}`,
	}
	for typ, name := range byType {
		t.Run(name, func(t *testing.T) {
			var fields map[string]json.RawMessage
			if err := json.Unmarshal([]byte(full[typ]), &fields); err != nil {
				t.Fatalf("no full sample of %q: %v", typ, err)
			}
			if missing := diff(slices.Collect(maps.Keys(defs[name].Properties)), slices.Collect(maps.Keys(fields))); len(missing) > 0 {
				t.Fatalf("the full sample of %q lacks %q", typ, missing)
			}
			for field := range fields {
				without := map[string]json.RawMessage{}
				for k, v := range fields {
					if k != field {
						without[k] = v
					}
				}
				raw, _ := json.Marshal(without)
				_, err := DecodeClientFrame(raw)
				if required := slices.Contains(defs[name].Required, field); required != (err != nil) {
					t.Errorf("$defs/%s: %q required = %v, but the decoder, without it: err = %v", name, field, required, err)
				}
			}
		})
	}
}

// Where JSON Schema and the decoder cannot agree. Each row pins today's behaviour, so that a
// change on either side is seen and this list (and docs/protocol.md) kept true.
func TestSchemaKnownGaps(t *testing.T) {
	sch := compileDef(t, "ClientFrame")
	multibyte := strings.Repeat("é", MaxIDLength) // 128 characters, 256 bytes
	tests := []struct {
		name          string
		raw           string
		decoderAccept bool
		schemaAccept  bool
	}{
		// maxLength counts characters; the server counts bytes.
		{"id of 128 two-byte characters", `{"type":"send","id":"` + multibyte + `","room":"r"}`, false, true},
		// encoding/json refuses a fraction in an int64 even when it is whole; JSON Schema does not.
		{"seq written 4.0", `{"type":"mark","room":"r","kind":"read","seq":4.0}`, false, true},
		// The decoder reads every frame into one struct, so it accepts fields of another frame
		// type, nulls and keys in another case; the schema asks clients for the strict form.
		{"field of another frame", `{"type":"typing","room":"r","body":"x"}`, true, false},
		{"null field", `{"type":"send","id":"c","room":"r","body":null}`, true, false},
		{"key in another case", `{"type":"ping","ID":"p"}`, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, decErr := DecodeClientFrame([]byte(tt.raw))
			schErr := schemaAccepts(sch, tt.raw)
			if (decErr == nil) != tt.decoderAccept || (schErr == nil) != tt.schemaAccept {
				t.Fatalf("decoder accepts = %v (want %v, err %v), schema accepts = %v (want %v, err %v)",
					decErr == nil, tt.decoderAccept, decErr, schErr == nil, tt.schemaAccept, schErr)
			}
		})
	}
}
