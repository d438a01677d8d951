// Package schematest validates JSON documents against the schema files in
// docs/schema (docs/json.md), so that every --json kind a test prints is
// checked against its published schema: Validate(t, kind, doc). Tests only.
package schematest
