package console_test

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/palisade-cwpp/palisade/internal/console"
)

// TestInstallOneLinerPinsTheConsole runs the download half of the install one-liner with the
// real curl: with the console's key pin it gets the script and the agent binary, whose checksum
// matches the one the script checks; with another pin curl refuses to connect.
func TestInstallOneLinerPinsTheConsole(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	bin := filepath.Join(t.TempDir(), "palisade-agent")
	if err := os.WriteFile(bin, []byte("\x7fELF stand-in for the agent binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	tc := startConsole(t, func(c *console.Config) { c.AgentBinary = bin })

	// The pin as the console computes it must be the hash of the key it serves with.
	pair, err := tls.LoadX509KeyPair(filepath.Join(tc.cfg.DataDir, "server.crt"), filepath.Join(tc.cfg.DataDir, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	spki := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	keyPin := "sha256//" + base64.StdEncoding.EncodeToString(spki[:])

	resp, err := tc.http.Get(tc.c.APIURL() + "/install.sh") // CA-verified client, no session
	if err != nil {
		t.Fatal(err)
	}
	viaGo, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	mustf(t, strings.Contains(csp, "script-src 'self'") && !strings.Contains(csp, "unsafe-inline") && strings.Contains(csp, "frame-ancestors 'none'") &&
		resp.Header.Get("X-Content-Type-Options") == "nosniff" && resp.Header.Get("X-Frame-Options") == "DENY",
		"security headers: %v", resp.Header)
	resp, err = tc.http.Get(tc.c.APIURL() + "/events")
	mustf(t, err == nil && resp.Request.URL.Path == "/login", "signed-out /events did not end on the sign-in page: %v", err)
	resp.Body.Close()
	mustf(t, resp.StatusCode == http.StatusOK && strings.Contains(string(viaGo), "KEY_PIN='"+keyPin+"'"),
		"install.sh (HTTP %d) does not carry the server key's pin %s", resp.StatusCode, keyPin)

	dir := t.TempDir()
	run := func(pin, path, out string) error {
		return exec.Command(curl, "-fsS", "--proto", "=https", "-k", "--pinnedpubkey", pin, "-o", out, tc.c.APIURL()+path).Run()
	}
	script := filepath.Join(dir, "install.sh")
	mustf(t, run(keyPin, "/install.sh", script) == nil, "curl with the console's pin failed")
	body, _ := os.ReadFile(script)
	m := regexp.MustCompile(`AGENT_SHA256='([0-9a-f]{64})'`).FindSubmatch(body)
	mustf(t, m != nil, "script has no checksum:\n%s", body)
	mustf(t, strings.Contains(string(body), "CA_PIN='"+tc.c.CA.Pin()+"'"), "script lacks the CA pin")
	got := filepath.Join(dir, "agent")
	mustf(t, run(keyPin, "/download/palisade-agent", got) == nil, "agent download failed")
	data, _ := os.ReadFile(got)
	sum := sha256.Sum256(data)
	mustf(t, hex.EncodeToString(sum[:]) == string(m[1]), "served binary's checksum differs from the script's")

	wrong := "sha256//" + base64.StdEncoding.EncodeToString(make([]byte, 32))
	mustf(t, run(wrong, "/install.sh", filepath.Join(dir, "x")) != nil, "curl accepted a wrong key pin")
}

func TestMetricsCountWebhookDeliveries(t *testing.T) {
	tc := startConsole(t)
	req, _ := http.NewRequest("GET", tc.c.APIURL()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+tc.token)
	resp, err := tc.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, outcome := range []string{"delivered", "failed", "dropped"} {
		if !strings.Contains(string(b), `palisade_webhook_deliveries_total{outcome="`+outcome+`"} 0`) {
			t.Errorf("metrics lack webhook deliveries %s:\n%s", outcome, b)
		}
	}
}
