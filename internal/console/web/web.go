// Package web serves the console's browser pages. This first version is a sign-in page and a
// fleet overview (hosts and latest events) drawn by a small script of our own from the user API;
// the pages read everything through the same authenticated API as the CLI, so the browser gets
// no data the API would not give that user.
package web

import (
	"embed"
	"html/template"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

var page = template.Must(template.ParseFS(static, "static/index.html"))

// Info is shown on the overview page to help onboard servers.
type Info struct {
	CAPin     string
	AgentPort string
}

// Register adds the pages to mux.
func Register(mux *http.ServeMux, info Info) {
	sub, _ := fs.Sub(static, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(sub)))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		page.Execute(w, info)
	})
}
