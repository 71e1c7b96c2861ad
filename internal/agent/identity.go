package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/palisade-cwpp/palisade/internal/agent/hostinfo"
	"github.com/palisade-cwpp/palisade/internal/console/pki"
	pb "github.com/palisade-cwpp/palisade/proto/palisade/v1"
)

// Identity is what enrollment leaves in the agent's data directory: who the agent is, which
// console it belongs to, and the credentials to prove both.
type Identity struct {
	HostID string `json:"host_id"`
	Server string `json:"server"`
	CAPin  string `json:"ca_pin"`

	cert tls.Certificate
	ca   *x509.Certificate
}

// Files in the data directory.
const (
	identityFile = "identity.json"
	certFile     = "agent.crt"
	keyFile      = "agent.key"
	caFile       = "ca.crt"
)

// ErrNotEnrolled means the data directory holds no identity yet.
var ErrNotEnrolled = errors.New("agent is not enrolled: run 'palisade-agent enroll' first")

// LoadIdentity reads the identity from dir.
func LoadIdentity(dir string) (*Identity, error) {
	b, err := os.ReadFile(filepath.Join(dir, identityFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotEnrolled
	}
	if err != nil {
		return nil, fmt.Errorf("read identity: %w", err)
	}
	var id Identity
	if err := json.Unmarshal(b, &id); err != nil {
		return nil, fmt.Errorf("parse %s: %w", identityFile, err)
	}
	if id.cert, err = tls.LoadX509KeyPair(filepath.Join(dir, certFile), filepath.Join(dir, keyFile)); err != nil {
		return nil, fmt.Errorf("load agent certificate: %w", err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, caFile))
	if err != nil {
		return nil, fmt.Errorf("read console CA: %w", err)
	}
	if id.ca, err = pki.ParseCertPEM(caPEM); err != nil {
		return nil, fmt.Errorf("parse console CA: %w", err)
	}
	return &id, nil
}

// verifyConsole checks that the console's certificate chains to ca and is a server
// certificate. The host name is not checked: the console CA is private to one console, so a
// valid server certificate from it is the console whatever address reached it (NAT, proxies).
func verifyConsole(ca *x509.Certificate) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("console presented no certificate")
		}
		leaf, err := x509.ParseCertificate(raw[0])
		if err != nil {
			return fmt.Errorf("parse console certificate: %w", err)
		}
		roots := x509.NewCertPool()
		roots.AddCert(ca)
		_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		if err != nil {
			return fmt.Errorf("console certificate not issued by the enrolled console CA: %w", err)
		}
		return nil
	}
}

// tlsConfig is the mutual-TLS configuration for Connect.
func (id *Identity) tlsConfig() *tls.Config {
	return &tls.Config{
		Certificates:          []tls.Certificate{id.cert},
		InsecureSkipVerify:    true, // replaced by verifyConsole, which checks the chain against the pinned CA
		VerifyPeerCertificate: verifyConsole(id.ca),
		MinVersion:            tls.VersionTLS13,
	}
}

// EnrollOptions are the inputs of Enroll.
type EnrollOptions struct {
	DataDir      string
	Server       string // host:port of the console's agent API
	Token        string
	CAPin        string // sha256:<hex> of the console CA's public key, shown by the console
	AgentVersion string
}

// Enroll trades a one-time token for a client certificate and writes the identity to the data
// directory. The console is trusted only if its CA matches the pin.
func Enroll(ctx context.Context, o EnrollOptions) (*Identity, error) {
	if _, err := LoadIdentity(o.DataDir); err == nil {
		return nil, fmt.Errorf("already enrolled (%s); remove it to enroll again", filepath.Join(o.DataDir, identityFile))
	}
	if o.CAPin == "" {
		return nil, errors.New("--ca-pin is required: copy it from the console's start-up output or web page")
	}
	var pinned *x509.Certificate
	cfg := &tls.Config{
		InsecureSkipVerify: true, // the pin check below replaces name-based verification
		MinVersion:         tls.VersionTLS13,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			for _, der := range raw[1:] {
				c, err := x509.ParseCertificate(der)
				if err == nil && c.IsCA && pki.CheckPin(c, o.CAPin) {
					pinned = c
					return verifyConsole(c)(raw, nil)
				}
			}
			return fmt.Errorf("console CA does not match the pin %s: wrong console, or someone in between", o.CAPin)
		},
	}
	facts, _ := hostinfo.Collect(o.AgentVersion)
	keyPEM, csrPEM, err := pki.NewKeyAndCSR(facts.Hostname)
	if err != nil {
		return nil, err
	}
	cc, err := grpc.NewClient(o.Server, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		return nil, fmt.Errorf("console address %q: %w", o.Server, err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := pb.NewAgentServiceClient(cc).Enroll(ctx, &pb.EnrollRequest{Token: o.Token, CsrPem: csrPEM, Facts: factsToProto(facts)})
	if err != nil {
		if st, ok := status.FromError(err); ok {
			return nil, fmt.Errorf("enrollment refused: %s", st.Message())
		}
		return nil, fmt.Errorf("enroll: %w", err)
	}
	if pinned == nil {
		return nil, errors.New("console CA was not verified")
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	id := Identity{HostID: resp.GetHostId(), Server: o.Server, CAPin: o.CAPin}
	idJSON, _ := json.MarshalIndent(id, "", "  ")
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{keyFile, keyPEM, 0o600}, {certFile, resp.GetCertificatePem(), 0o644}, {caFile, pemOf(pinned), 0o644}, {identityFile, idJSON, 0o600},
	} {
		if err := writeFileAtomic(filepath.Join(o.DataDir, f.name), f.data, f.mode); err != nil {
			return nil, err
		}
	}
	return LoadIdentity(o.DataDir)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func pemOf(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}
