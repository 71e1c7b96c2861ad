package api

import (
	"net/http"
	"strings"
	"testing"
)

func TestWebhookSecretShownOnceAndNeverAudited(t *testing.T) {
	fx := newFixture(t, Config{})
	created := fx.call(request{method: "POST", path: "/api/v1/webhooks", auth: "admin",
		body: `{"name":"soc","url":"https://hooks.example.com/in?token=t0ps3cret","categories":["malware"]}`}, http.StatusCreated)
	secret, _ := created["secret"].(string)
	if !strings.HasPrefix(secret, "whsec_") || created["min_severity"] != "high" {
		t.Fatalf("created webhook %v: want a generated secret and default severity high", created)
	}
	list := fx.serve(request{method: "GET", path: "/api/v1/webhooks", auth: "admin"})
	if strings.Contains(list.Body.String(), secret) {
		t.Error("listing shows the secret")
	}
	audit := fx.serve(request{method: "GET", path: "/api/v1/audit?action=webhook.create", auth: "admin"})
	if !strings.Contains(audit.Body.String(), "webhook.create") || strings.Contains(audit.Body.String(), secret) ||
		strings.Contains(audit.Body.String(), "t0ps3cret") {
		t.Errorf("audit entry missing or leaking a secret: %s", audit.Body)
	}
}

func TestWebhookValidation(t *testing.T) {
	fx := newFixture(t, Config{})
	for _, body := range []string{
		`{"name":"x","url":"ftp://hooks.example.com/"}`,
		`{"name":"x","url":"https://user:pw@hooks.example.com/"}`,
		`{"name":"x","url":"https://hooks.example.com/","min_severity":"urgent"}`,
		`{"name":"x","url":"https://hooks.example.com/","categories":["ransomware"]}`,
		`{"name":"x","url":"https://hooks.example.com/","secret":"short"}`,
		`{"name":"bad name","url":"https://hooks.example.com/"}`,
	} {
		if w := fx.serve(request{method: "POST", path: "/api/v1/webhooks", auth: "admin", body: body}); w.Code != http.StatusBadRequest {
			t.Errorf("%s: HTTP %d, want 400", body, w.Code)
		}
	}
	if w := fx.serve(request{method: "POST", path: "/api/v1/webhooks", auth: "analyst", body: `{"name":"x","url":"https://h.example/"}`}); w.Code != http.StatusForbidden {
		t.Errorf("analyst creating a webhook: HTTP %d, want 403", w.Code)
	}
}

// Web forms carry the CSRF token in a hidden field instead of the header; the check is the same.
func TestSessionCSRFFromFormField(t *testing.T) {
	fx := newFixture(t, Config{})
	form := func(token string) request {
		return request{method: "POST", path: "/api/v1/logout", auth: "session-no-csrf", body: "csrf_token=" + token,
			header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}}
	}
	if w := fx.serve(form("wrong")); w.Code != http.StatusForbidden {
		t.Errorf("form with a wrong CSRF token: HTTP %d, want 403", w.Code)
	}
	if w := fx.serve(form(testCSRF)); w.Code != http.StatusOK {
		t.Errorf("form with the session's CSRF token: HTTP %d, want 200: %s", w.Code, w.Body)
	}
}
