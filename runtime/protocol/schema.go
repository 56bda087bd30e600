package protocol

import _ "embed" // SchemaV1 is embedded so that it ships with the code it describes

// SchemaV1 is the JSON Schema (draft 2020-12) of WebSocket protocol v1, the file
// runtime/protocol/schema/protocol-v1.schema.json. $defs/ClientFrame and $defs/ServerFrame
// describe each direction; the web client generates its frame types from it. Tests keep it
// in step with the Go types (schema_test.go).
//
//go:embed schema/protocol-v1.schema.json
var SchemaV1 string

// SchemaV1ID is the $id of SchemaV1, the base for references into it such as
// SchemaV1ID + "#/$defs/ServerFrame".
const SchemaV1ID = "https://github.com/parleychat/parley/runtime/protocol/schema/protocol-v1.schema.json"
