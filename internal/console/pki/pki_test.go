package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newCA(t testing.TB) (*Authority, string) {
	t.Helper()
	dir := t.TempDir()
	ca, err := LoadOrCreate(dir, "Test console")
	if err != nil {
		t.Fatalf("LoadOrCreate: %v", err)
	}
	return ca, dir
}

func TestLoadOrCreate(t *testing.T) {
	ca, dir := newCA(t)
	if !ca.Cert.IsCA || !ca.Cert.BasicConstraintsValid || ca.Cert.Subject.CommonName != "Test console CA" {
		t.Fatalf("CA certificate: IsCA=%v CN=%q", ca.Cert.IsCA, ca.Cert.Subject.CommonName)
	}
	if !strings.HasPrefix(ca.Pin(), "sha256:") || len(ca.Pin()) != len("sha256:")+64 {
		t.Fatalf("Pin() = %q", ca.Pin())
	}
	st, err := os.Stat(filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("ca.key mode %v, want 0600", st.Mode().Perm())
	}

	again, err := LoadOrCreate(dir, "Another name")
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	if again.Pin() != ca.Pin() {
		t.Fatalf("reloaded CA pin %s, want %s", again.Pin(), ca.Pin())
	}
	if !bytes.Equal(again.CertPEM, ca.CertPEM) || !again.Cert.Equal(ca.Cert) {
		t.Fatal("reloaded CA certificate differs")
	}
	// The reloaded key still signs for the same CA.
	_, csrPEM, err := NewKeyAndCSR("agent")
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := again.SignAgent(csrPEM, "h-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.CheckSignatureFrom(ca.Cert); err != nil {
		t.Fatalf("certificate signed by the reloaded CA does not chain to the original: %v", err)
	}
}

func TestLoadOrCreateBrokenFiles(t *testing.T) {
	_, dir := newCA(t)
	if err := os.WriteFile(filepath.Join(dir, "ca.key"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(dir, "x"); err == nil {
		t.Error("LoadOrCreate with a broken key succeeded")
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(dir, "x"); err == nil {
		t.Error("LoadOrCreate with a broken certificate succeeded")
	}
}

func TestServerCertificate(t *testing.T) {
	ca, dir := newCA(t)
	hosts := []string{"localhost", "127.0.0.1", "::1", "console.example"}
	pair, err := ca.ServerCertificate(dir, hosts)
	if err != nil {
		t.Fatal(err)
	}
	if len(pair.Certificate) != 2 {
		t.Fatalf("chain has %d certificates, want leaf and CA", len(pair.Certificate))
	}
	if !bytes.Equal(pair.Certificate[1], ca.Cert.Raw) {
		t.Fatal("second certificate of the chain is not the CA")
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("VerifyHostname(%q): %v", h, err)
		}
	}
	if err := leaf.VerifyHostname("other.example"); err == nil {
		t.Error("certificate covers other.example")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "localhost",
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("server certificate does not verify against the CA: %v", err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("server certificate is usable as a client certificate")
	}

	// Same hosts: the same certificate is loaded again.
	again, err := ca.ServerCertificate(dir, hosts[:2])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Certificate[0], pair.Certificate[0]) {
		t.Error("certificate reissued although it covers the hosts")
	}
	if len(again.Certificate) != 2 || !bytes.Equal(again.Certificate[1], ca.Cert.Raw) {
		t.Error("reloaded certificate lacks the CA in its chain")
	}

	// A new host: reissued, covering it.
	re, err := ca.ServerCertificate(dir, []string{"localhost", "127.0.0.1", "10.1.2.3", "new.example"})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(re.Certificate[0], pair.Certificate[0]) {
		t.Fatal("certificate not reissued for new hosts")
	}
	leaf, _ = x509.ParseCertificate(re.Certificate[0])
	for _, h := range []string{"localhost", "127.0.0.1", "10.1.2.3", "new.example"} {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("reissued: VerifyHostname(%q): %v", h, err)
		}
	}

	// A certificate from another CA in the directory is replaced.
	other, _ := newCA(t)
	if _, err := other.ServerCertificate(dir, []string{"localhost"}); err != nil {
		t.Fatal(err)
	}
	mine, err := ca.ServerCertificate(dir, []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ = x509.ParseCertificate(mine.Certificate[0])
	if err := leaf.CheckSignatureFrom(ca.Cert); err != nil {
		t.Fatalf("certificate of another CA kept: %v", err)
	}
}

func csrPEMFor(t testing.TB, key any) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "h-evil"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func TestSignAgent(t *testing.T) {
	ca, _ := newCA(t)
	_, csrPEM, err := NewKeyAndCSR("whatever-the-agent-claims")
	if err != nil {
		t.Fatal(err)
	}
	cert, certPEM, err := ca.SignAgent(csrPEM, "h-0123456789")
	if err != nil {
		t.Fatalf("SignAgent: %v", err)
	}
	if cert.Subject.CommonName != "h-0123456789" {
		t.Errorf("CN = %q, want the host ID", cert.Subject.CommonName)
	}
	if len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("ExtKeyUsage = %v, want client auth only", cert.ExtKeyUsage)
	}
	if cert.IsCA {
		t.Error("agent certificate is a CA")
	}
	parsed, err := ParseCertPEM(certPEM)
	if err != nil || !parsed.Equal(cert) {
		t.Fatalf("PEM does not hold the certificate: %v", err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("agent certificate does not verify for client auth: %v", err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Fatal("agent certificate verifies for server auth")
	}
	other, _ := newCA(t)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: other.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Fatal("agent certificate verifies against another CA")
	}
	cert2, _, err := ca.SignAgent(csrPEM, "h-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	if cert2.SerialNumber.Cmp(cert.SerialNumber) == 0 {
		t.Error("two certificates with one serial")
	}
}

func TestSignAgentAcceptsLargerCurves(t *testing.T) {
	ca, _ := newCA(t)
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		key, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := ca.SignAgent(csrPEMFor(t, key), "h-x"); err != nil {
			t.Errorf("%s: %v", c.Params().Name, err)
		}
	}
}

func TestSignAgentRejects(t *testing.T) {
	ca, _ := newCA(t)
	_, good, err := NewKeyAndCSR("a")
	if err != nil {
		t.Fatal(err)
	}

	block, _ := pem.Decode(good)
	broken := bytes.Clone(block.Bytes)
	broken[len(broken)-5] ^= 0x01 // inside the signature
	brokenPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: broken})

	// Change one byte of the subject: the request still parses, its signature no longer matches.
	tampered := bytes.Clone(block.Bytes)
	i := bytes.Index(tampered, []byte("a"))
	if i < 0 {
		t.Fatal("no subject byte to flip")
	}
	tampered[i] = 'b'
	tamperedPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: tampered})

	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, want string
		csr        []byte
	}{
		{"empty", "not PEM", nil},
		{"not PEM", "not PEM", []byte("hello")},
		{"DER without PEM", "not PEM", block.Bytes},
		{"wrong PEM type", "not PEM", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: block.Bytes})},
		{"PEM of junk", "parse", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte("junk")})},
		{"flipped signature byte", "signature", brokenPEM},
		{"tampered subject", "signature", tamperedPEM},
		{"RSA-1024", "unsupported key type", csrPEMFor(t, rsaKey)},
		{"RSA-2048", "unsupported key type", csrPEMFor(t, rsa2048)},
		{"Ed25519", "unsupported key type", csrPEMFor(t, edKey)},
		{"P-224", "smaller than P-256", csrPEMFor(t, p224)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert, certPEM, err := ca.SignAgent(tt.csr, "h-1")
			if err == nil {
				t.Fatalf("SignAgent accepted it: CN=%s", cert.Subject.CommonName)
			}
			if cert != nil || certPEM != nil {
				t.Error("certificate returned with an error")
			}
			if tt.want != "" && !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestCheckPin(t *testing.T) {
	ca, _ := newCA(t)
	pin := ca.Pin()
	for _, p := range []string{pin, strings.ToUpper(pin), "SHA256:" + strings.ToUpper(strings.TrimPrefix(pin, "sha256:")), " " + pin + "\n"} {
		if !CheckPin(ca.Cert, p) {
			t.Errorf("CheckPin(%q) = false", p)
		}
	}
	other, _ := newCA(t)
	for _, p := range []string{"", "sha256:", other.Pin(), strings.TrimPrefix(pin, "sha256:"), pin[:len(pin)-1], pin + "0"} {
		if CheckPin(ca.Cert, p) {
			t.Errorf("CheckPin(%q) = true", p)
		}
	}
	if Pin(ca.Cert) != pin {
		t.Error("Pin(cert) differs from Authority.Pin")
	}
}

func TestParseCertPEM(t *testing.T) {
	ca, _ := newCA(t)
	c, err := ParseCertPEM(ca.CertPEM)
	if err != nil || !c.Equal(ca.Cert) {
		t.Fatalf("ParseCertPEM: %v", err)
	}
	for _, b := range [][]byte{nil, []byte("x"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: ca.Cert.Raw})} {
		if _, err := ParseCertPEM(b); err == nil {
			t.Errorf("ParseCertPEM(%q) succeeded", b)
		}
	}
}

// FuzzSignAgentCSR feeds arbitrary bytes as a certificate request: SignAgent must never panic,
// and whatever it signs is a client-only certificate for the host ID it was given.
func FuzzSignAgentCSR(f *testing.F) {
	ca, _ := newCA(f)
	_, good, err := NewKeyAndCSR("agent")
	if err != nil {
		f.Fatal(err)
	}
	block, _ := pem.Decode(good)
	f.Add(good)
	f.Add(block.Bytes)
	f.Add([]byte{})
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\n\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: block.Bytes[:len(block.Bytes)/2]}))
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	f.Add(csrPEMFor(f, edKey))
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	f.Add(csrPEMFor(f, p224))
	f.Fuzz(func(t *testing.T, csr []byte) {
		cert, certPEM, err := ca.SignAgent(csr, "h-fuzz")
		if err != nil {
			if cert != nil || certPEM != nil {
				t.Fatal("certificate returned with an error")
			}
			return
		}
		if cert.Subject.CommonName != "h-fuzz" || len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
			t.Fatalf("issued CN=%q EKU=%v", cert.Subject.CommonName, cert.ExtKeyUsage)
		}
		if _, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok {
			t.Fatalf("issued a certificate for a %T key", cert.PublicKey)
		}
		if err := cert.CheckSignatureFrom(ca.Cert); err != nil {
			t.Fatal(err)
		}
	})
}
