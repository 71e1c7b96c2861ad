// Package agentapi is the console's side of the agent protocol: enrollment, and the one
// bidirectional stream per agent that carries heartbeats, facts, findings and task updates in,
// and acknowledgements and tasks out.
//
// It authenticates agents by their client certificate (mutual TLS), checks the host table on
// every connection so revoked hosts are refused, validates everything an agent sends, and hands
// findings to the store. It runs no detection logic.
package agentapi

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/palisade-cwpp/palisade/internal/console/pki"
	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/finding"
	pb "github.com/palisade-cwpp/palisade/proto/palisade/v1"
)

// Config tunes the agent API.
type Config struct {
	// AggregationWindow folds repeated findings with one key into one event while it stays open.
	AggregationWindow time.Duration
	// MaxFindingBytes refuses larger findings (counted as rejected).
	MaxFindingBytes int
	// InventoryChanged is called after a host's package inventory changed, so the console can
	// rematch it against the vulnerability data. Optional.
	InventoryChanged func(hostID string)
}

// Server implements pb.AgentServiceServer.
type Server struct {
	pb.UnimplementedAgentServiceServer
	cfg     Config
	store   *store.Store
	ca      *pki.Authority
	log     *slog.Logger
	metrics *Metrics

	mu      sync.Mutex
	streams map[string]*conn // by host ID
}

// New returns a server over st that signs agent certificates with ca.
func New(cfg Config, st *store.Store, ca *pki.Authority, m *Metrics, log *slog.Logger) *Server {
	if cfg.AggregationWindow <= 0 {
		cfg.AggregationWindow = time.Hour
	}
	if cfg.MaxFindingBytes <= 0 {
		cfg.MaxFindingBytes = 256 << 10
	}
	return &Server{cfg: cfg, store: st, ca: ca, log: log, metrics: m, streams: map[string]*conn{}}
}

// Enroll trades a one-time token for a client certificate.
func (s *Server) Enroll(ctx context.Context, req *pb.EnrollRequest) (*pb.EnrollResponse, error) {
	if req.GetToken() == "" || len(req.GetToken()) > 256 {
		s.metrics.enrollments.WithLabelValues("bad-request").Inc()
		return nil, status.Error(codes.InvalidArgument, "enrollment token missing or malformed")
	}
	facts := factsFromProto(req.GetFacts())
	hostID := "h-" + finding.NewID()[:20]
	cert, certPEM, err := s.ca.SignAgent(req.GetCsrPem(), hostID)
	if err != nil {
		s.metrics.enrollments.WithLabelValues("bad-request").Inc()
		return nil, status.Errorf(codes.InvalidArgument, "certificate request: %v", err)
	}
	h, err := s.store.EnrollHost(ctx, store.HashSecret(req.GetToken()), store.Host{
		ID: hostID, Hostname: facts.Hostname, CertSerial: cert.SerialNumber.Text(16), Facts: facts,
	})
	switch {
	case errors.Is(err, store.ErrTokenUnknown), errors.Is(err, store.ErrTokenExpired), errors.Is(err, store.ErrTokenUsed):
		s.metrics.enrollments.WithLabelValues("refused").Inc()
		s.log.Warn("enrollment refused", "reason", err, "peer", peerAddr(ctx), "hostname", facts.Hostname)
		return nil, status.Error(codes.PermissionDenied, errors.Unwrap(err).Error())
	case err != nil:
		s.metrics.enrollments.WithLabelValues("error").Inc()
		s.log.Error("enrollment failed", "err", err)
		return nil, status.Error(codes.Internal, "enrollment failed; see the console log")
	}
	s.metrics.enrollments.WithLabelValues("ok").Inc()
	s.log.Info("host enrolled", "host", h.ID, "hostname", h.Hostname, "group", h.Group, "peer", peerAddr(ctx))
	_ = s.store.Audit(ctx, store.AuditEntry{Actor: "agent:" + h.ID, Action: "host.enroll", Target: h.ID,
		Detail: fmt.Sprintf("hostname=%s group=%s", h.Hostname, h.Group), Remote: peerAddr(ctx)})
	return &pb.EnrollResponse{HostId: h.ID, CertificatePem: certPEM, CaPem: s.ca.CertPEM}, nil
}

// authenticate returns the host ID of the verified client certificate, refusing revoked hosts
// and certificates that are not the one issued at enrollment.
func (s *Server) authenticate(ctx context.Context) (store.Host, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return store.Host{}, status.Error(codes.Unauthenticated, "no peer")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return store.Host{}, status.Error(codes.Unauthenticated, "a client certificate issued at enrollment is required")
	}
	leaf := ti.State.VerifiedChains[0][0]
	if !hasClientAuth(leaf) {
		return store.Host{}, status.Error(codes.Unauthenticated, "certificate is not an agent certificate")
	}
	h, err := s.store.HostByID(ctx, leaf.Subject.CommonName, time.Time{})
	if errors.Is(err, store.ErrNotFound) {
		return h, status.Error(codes.PermissionDenied, "unknown host")
	}
	if err != nil {
		return h, status.Error(codes.Unavailable, "store unavailable")
	}
	if h.Revoked() {
		return h, status.Error(codes.PermissionDenied, "host revoked: enroll again with a new token")
	}
	if h.CertSerial != leaf.SerialNumber.Text(16) {
		return h, status.Error(codes.PermissionDenied, "certificate superseded")
	}
	return h, nil
}

func hasClientAuth(c *x509.Certificate) bool {
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageClientAuth {
			return true
		}
	}
	return false
}

func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

// Connected reports the host IDs with a live stream.
func (s *Server) Connected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.streams))
	for id := range s.streams {
		out = append(out, id)
	}
	return out
}

// Disconnect ends a host's stream (after revocation), telling the agent why.
func (s *Server) Disconnect(hostID, reason string) {
	s.mu.Lock()
	c := s.streams[hostID]
	s.mu.Unlock()
	if c != nil {
		c.close(reason)
	}
}

// NotifyPolicy makes every live stream send its host's policy again if it changed.
func (s *Server) NotifyPolicy() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.streams {
		wake(c.policy)
	}
}

// NotifyTasks wakes the streams of hosts that have new tasks.
func (s *Server) NotifyTasks(hostIDs []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range hostIDs {
		if c := s.streams[id]; c != nil {
			select {
			case c.tasks <- struct{}{}:
			default:
			}
		}
	}
}

func factsFromProto(f *pb.HostFacts) finding.HostFacts {
	if f == nil {
		return finding.HostFacts{}
	}
	out := finding.HostFacts{
		Hostname: clip(f.GetHostname(), 255), OSID: clip(f.GetOsId(), 64), OSVersion: clip(f.GetOsVersion(), 64),
		OSPretty: clip(f.GetOsPretty(), 255), Kernel: clip(f.GetKernel(), 255), Arch: clip(f.GetArch(), 32),
		AgentVersion: clip(f.GetAgentVersion(), 64), MachineID: clip(f.GetMachineId(), 64),
	}
	for i, ip := range f.GetIpAddresses() {
		if i == 64 {
			break
		}
		out.IPAddresses = append(out.IPAddresses, clip(ip, 64))
	}
	// A boot time past year 9999 cannot be written as JSON: the store would drop every fact.
	if bt := f.GetBootTimeUnix(); bt > 0 && bt <= maxUnixTime {
		out.BootTime = time.Unix(bt, 0).UTC()
	}
	return out
}

// maxUnixTime is 9999-12-31T23:59:59Z, the last time RFC 3339 (and so JSON) can express.
const maxUnixTime = 253402300799

// clip bounds strings an agent sends, on a rune boundary, and makes them storable as SQL text:
// valid UTF-8 without NUL (which PostgreSQL refuses).
func clip(s string, n int) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && (s[n]&0xC0) == 0x80 {
		n--
	}
	return s[:n]
}

// decodeFinding parses and validates one finding from an agent.
func (s *Server) decodeFinding(b []byte, hostID string) (finding.Finding, error) {
	var f finding.Finding
	if len(b) > s.cfg.MaxFindingBytes {
		return f, fmt.Errorf("finding of %d bytes exceeds %d", len(b), s.cfg.MaxFindingBytes)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("decode finding: %w", err)
	}
	if err := f.Validate(); err != nil {
		return f, fmt.Errorf("finding %q: %w", clip(f.ID, 64), err)
	}
	f.Host = hostID
	return f, nil
}
