package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestPagesServe(t *testing.T) {
	mux := http.NewServeMux()
	Register(mux, Info{CAPin: "sha256:abc", AgentPort: "8444"})
	for _, tt := range []struct {
		path, contentType, contains string
		code                        int
	}{
		{"/", "text/html", `palisade-agent enroll --server CONSOLE:8444 --token TOKEN --ca-pin sha256:abc`, 200},
		{"/static/app.js", "javascript", "/api/v1/login", 200},
		{"/static/app.css", "text/css", "table", 200},
		{"/static/missing.js", "", "", 404},
		{"/other", "", "", 404},
	} {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", tt.path, nil))
		if w.Code != tt.code {
			t.Errorf("%s: HTTP %d, want %d", tt.path, w.Code, tt.code)
			continue
		}
		if !strings.Contains(w.Header().Get("Content-Type"), tt.contentType) || !strings.Contains(w.Body.String(), tt.contains) {
			t.Errorf("%s: %s %q", tt.path, w.Header().Get("Content-Type"), w.Body.String()[:min(200, w.Body.Len())])
		}
	}
}

// The page must not inline scripts: the console's Content-Security-Policy forbids them.
func TestNoInlineScript(t *testing.T) {
	b, err := static.ReadFile("static/index.html")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "<script>") || strings.Contains(string(b), "onclick=") {
		t.Error("index.html has inline script")
	}
}
