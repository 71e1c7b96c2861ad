// Package console assembles the Palisade console: it opens the store, the certificate
// authority, the agent API (gRPC, mutual TLS) and the user API with the web UI (HTTPS), and runs
// the console's housekeeping. The parts live in agentapi, api, pki, store and web; this package
// only wires them and owns their lifetimes.
package console

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/palisade-cwpp/palisade/internal/console/agentapi"
	"github.com/palisade-cwpp/palisade/internal/console/api"
	"github.com/palisade-cwpp/palisade/internal/console/notify"
	"github.com/palisade-cwpp/palisade/internal/console/pki"
	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/console/vulndb"
	"github.com/palisade-cwpp/palisade/internal/console/web"
	"github.com/palisade-cwpp/palisade/internal/task"
	pb "github.com/palisade-cwpp/palisade/proto/palisade/v1"
)

// TaskTypes are the task types agents of this release know.
var TaskTypes = task.Types

// Console is a running console.
type Console struct {
	cfg    Config
	log    *slog.Logger
	Store  *store.Store
	CA     *pki.Authority
	Agents *agentapi.Server
	Vulns  *vulndb.Manager

	grpcSrv           *grpc.Server
	httpSrv           *http.Server
	agentLn, apiLn    net.Listener
	done              chan struct{}
	cancelHousekeeper context.CancelFunc
	notifier          *notify.Notifier
}

// Bootstrap is what a first start creates and must tell the operator once.
type Bootstrap struct {
	AdminPassword string // empty when the admin existed already or the password was given
	CLIConfig     string // path of the cli.json written for the local admin CLI
}

// Open prepares everything and binds the listeners; Serve starts serving. Separate steps let
// callers (and tests on port 0) learn the addresses before agents connect.
func Open(ctx context.Context, cfg Config, adminPassword string, out io.Writer, log *slog.Logger) (*Console, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	ca, err := pki.LoadOrCreate(cfg.DataDir, "Palisade console")
	if err != nil {
		return nil, err
	}
	serverCert, err := ca.ServerCertificate(cfg.DataDir, cfg.Hostnames)
	if err != nil {
		return nil, err
	}
	keyPin, err := serverKeyPin(serverCert)
	if err != nil {
		return nil, err
	}
	dsn := cfg.Database
	if dsn == "" {
		dsn = filepath.Join(cfg.DataDir, "palisade.db")
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, log: log, Store: st, CA: ca, done: make(chan struct{})}
	c.Vulns, err = vulndb.Open(vulndb.Config{Dir: filepath.Join(cfg.DataDir, "vulndb"), Sources: cfg.Vulns.Sources,
		FetchInterval: time.Duration(cfg.Vulns.FetchInterval)}, st, log.With("part", "vulndb"))
	if err != nil {
		st.Close()
		return nil, err
	}
	if c.agentLn, err = net.Listen("tcp", cfg.AgentListen); err != nil {
		st.Close()
		return nil, fmt.Errorf("agent_listen: %w", err)
	}
	if c.apiLn, err = net.Listen("tcp", cfg.APIListen); err != nil {
		c.agentLn.Close()
		st.Close()
		return nil, fmt.Errorf("api_listen: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	c.Agents = agentapi.New(agentapi.Config{AggregationWindow: time.Duration(cfg.AggregationWindow),
		InventoryChanged: c.Vulns.HostChanged}, st, ca, agentapi.NewMetrics(reg), log.With("part", "agentapi"))
	c.grpcSrv = grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{
			Certificates: []tls.Certificate{serverCert},
			// Enrollment comes without a client certificate; Connect refuses a stream without one.
			ClientAuth: tls.VerifyClientCertIfGiven,
			ClientCAs:  ca.Pool(),
			MinVersion: tls.VersionTLS13,
		})),
		grpc.MaxRecvMsgSize(8<<20),
		// Thousands of mostly idle agent streams: small per-connection buffers, and write buffers
		// returned to a pool between flushes.
		grpc.ReadBufferSize(16<<10),
		grpc.WriteBufferSize(16<<10),
		grpc.SharedWriteBuffer(true),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	pb.RegisterAgentServiceServer(c.grpcSrv, c.Agents)

	apiSrv := api.New(api.Config{SessionTTL: time.Duration(cfg.SessionTTL), OfflineAfter: time.Duration(cfg.OfflineAfter), TaskTypes: TaskTypes,
		Vulns: c.Vulns},
		st, c.Agents, log.With("part", "api"))
	mux := http.NewServeMux()
	apiSrv.Register(mux)
	mux.Handle("GET /metrics", apiSrv.RequireViewer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	_, agentPort, _ := net.SplitHostPort(c.AgentAddr())
	web.New(web.Config{CAPin: ca.Pin(), ServerKeyPin: keyPin, AgentPort: agentPort, AgentBinary: cfg.AgentBinary,
		CACert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw}), OfflineAfter: time.Duration(cfg.OfflineAfter)},
		apiSrv, st, log.With("part", "web")).Register(mux)
	c.notifier = notify.New(notify.Config{}, st, log.With("part", "notify"))
	for outcome, n := range map[string]*atomic.Int64{"delivered": &c.notifier.Delivered, "failed": &c.notifier.Failed, "dropped": &c.notifier.Dropped} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "palisade_webhook_deliveries_total",
			Help: "Webhook deliveries by outcome (failed: after all retries; dropped: queue full).", ConstLabels: prometheus.Labels{"outcome": outcome}},
			func() float64 { return float64(n.Load()) }))
	}
	c.httpSrv = &http.Server{
		Handler:           securityHeaders(mux),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	if err := c.bootstrap(ctx, adminPassword, out); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// serverKeyPin is "sha256//<base64>" of the HTTPS certificate's public key, as curl's
// --pinnedpubkey takes it.
func serverKeyPin(cert tls.Certificate) (string, error) {
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return "", fmt.Errorf("parse server certificate: %w", err)
	}
	sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	return "sha256//" + base64.StdEncoding.EncodeToString(sum[:]), nil
}

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Referrer-Policy", "same-origin")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		h.ServeHTTP(w, r)
	})
}

// AgentAddr is the bound agent API address.
func (c *Console) AgentAddr() string { return c.agentLn.Addr().String() }

// APIAddr is the bound user API address.
func (c *Console) APIAddr() string { return c.apiLn.Addr().String() }

// APIURL is the user API's base URL on loopback.
func (c *Console) APIURL() string {
	_, port, _ := net.SplitHostPort(c.APIAddr())
	return "https://127.0.0.1:" + port
}

// DataDir is where the console keeps its files.
func (c *Console) DataDir() string { return c.cfg.DataDir }

// Serve serves until ctx ends or a server fails, then shuts down gracefully.
func (c *Console) Serve(ctx context.Context) error {
	hctx, cancel := context.WithCancel(ctx)
	c.cancelHousekeeper = cancel
	go c.housekeep(hctx)
	go c.notifier.Run(hctx)
	go c.Vulns.Run(hctx)
	errc := make(chan error, 2)
	go func() { errc <- c.grpcSrv.Serve(c.agentLn) }()
	go func() { errc <- c.httpSrv.ServeTLS(c.apiLn, "", "") }()
	c.log.Info("console serving", "agents", c.AgentAddr(), "api", c.APIURL(), "database", c.Store.Dialect(), "ca_pin", c.CA.Pin())
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
	}
	c.Close()
	return err
}

// Close stops both servers and closes the store.
func (c *Console) Close() {
	if c.cancelHousekeeper != nil {
		c.cancelHousekeeper()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.httpSrv.Shutdown(sctx)
	stopped := make(chan struct{})
	go func() { c.grpcSrv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-sctx.Done():
		c.grpcSrv.Stop()
	}
	c.agentLn.Close()
	c.apiLn.Close()
	c.Store.Close()
}

// housekeep expires tasks and sessions.
func (c *Console) housekeep(ctx context.Context) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		if n, err := c.Store.ExpireTasks(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("expire tasks", "err", err)
		} else if n > 0 {
			c.log.Info("tasks expired on hosts that never took them", "count", n)
		}
		if _, err := c.Store.DeleteExpiredSessions(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("expire sessions", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// CLIConfig is what the palisade CLI reads to reach the API: written by the console on first
// start for the local admin, or by 'palisade login'.
type CLIConfig struct {
	URL    string `json:"url"`
	CAFile string `json:"ca_file"`
	Token  string `json:"token"`
}

// bootstrap creates the first admin and a CLI token for the local operator.
func (c *Console) bootstrap(ctx context.Context, password string, out io.Writer) error {
	n, err := c.Store.CountUsers(ctx)
	if err != nil {
		return fmt.Errorf("count users: %w", err)
	}
	if n > 0 {
		return nil
	}
	generated := password == ""
	if generated {
		password = api.NewSecret(12)
	}
	hash, err := api.HashPassword(password)
	if err != nil {
		return fmt.Errorf("admin password: %w", err)
	}
	now := c.Store.Now()
	admin := store.User{ID: "u-" + api.NewSecret(8), Name: "admin", Role: store.RoleAdmin, PasswordHash: hash, CreatedAt: now}
	if err := c.Store.CreateUser(ctx, admin); err != nil {
		return err
	}
	token := api.APITokenPrefix + api.NewSecret(24)
	if err := c.Store.CreateAPIToken(ctx, store.APIToken{ID: "at-" + api.NewSecret(6), Name: "local-cli", TokenHash: api.HashSecret(token),
		UserID: admin.ID, CreatedAt: now}); err != nil {
		return err
	}
	caFile, _ := filepath.Abs(filepath.Join(c.cfg.DataDir, "ca.crt"))
	cliPath := filepath.Join(c.cfg.DataDir, "cli.json")
	b, _ := json.MarshalIndent(CLIConfig{URL: c.APIURL(), CAFile: caFile, Token: token}, "", "  ")
	if err := os.WriteFile(cliPath, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", cliPath, err)
	}
	c.Store.Audit(ctx, store.AuditEntry{Actor: "console", Action: "user.create", Target: "admin", Detail: "first start"})
	c.Store.Audit(ctx, store.AuditEntry{Actor: "console", Action: "api-token.create", Target: "local-cli", Detail: "first start, for " + cliPath})
	// The password goes to the terminal once, never to the log.
	if generated {
		fmt.Fprintf(out, "\nFirst start: created user \"admin\" with password %s\n(shown once; change it with 'palisade users passwd admin').\n", password)
	} else {
		fmt.Fprintf(out, "\nFirst start: created user \"admin\" with the password given.\n")
	}
	fmt.Fprintf(out, "The local CLI is logged in as admin through %s.\n\n", cliPath)
	return nil
}
