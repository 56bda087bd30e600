// Package web serves Parley's web client: the Vite build of this directory, embedded into
// the binary, with a strict Content Security Policy, long-lived caching of hashed assets
// and index.html for every client-side route. A binary built before the client (no Node
// on the machine) serves a page that says how to build it.
package web

import (
	"embed"
	"io/fs"
)

// dist holds dist/README.txt (committed, so this compiles without a build) and, after
// `npm run build`, dist/app with the client.
//
//go:embed all:dist
var dist embed.FS

// Build returns the embedded client build, or nil when the binary was built without it.
func Build() fs.FS {
	app, err := fs.Sub(dist, "dist/app")
	if err != nil {
		return nil
	}
	if _, err := fs.Stat(app, "index.html"); err != nil {
		return nil
	}
	return app
}
