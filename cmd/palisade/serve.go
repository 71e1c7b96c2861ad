package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/palisade-cwpp/palisade/internal/agent"
	"github.com/palisade-cwpp/palisade/internal/console"
	"github.com/palisade-cwpp/palisade/internal/console/api"
)

func runServe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	configPath := fs.String("config", "", "YAML configuration file (see docs/CONFIGURATION.md)")
	dataDir := fs.String("data-dir", "", "data directory (default ./data)")
	database := fs.String("database", "", "postgres://... URL; empty for SQLite in the data directory")
	agentListen := fs.String("agent-listen", "", "agent API address (default :8444)")
	apiListen := fs.String("api-listen", "", "user API and web UI address (default :8443)")
	adminPassword := fs.String("admin-password", "", "first admin's password on first start (or env PALISADE_ADMIN_PASSWORD); generated and printed once when empty")
	localAgent := fs.Bool("local-agent", false, "also run an agent for this machine, enrolled to this console (data in DATA_DIR/agent)")
	if _, err := parse(fs, args, 0, "no arguments"); err != nil {
		return err
	}
	var cfg console.Config
	if *configPath != "" {
		var err error
		if cfg, err = console.LoadConfig(*configPath); err != nil {
			return err
		}
	}
	// Flags override the file.
	for _, o := range []struct {
		flag string
		dst  *string
	}{{*dataDir, &cfg.DataDir}, {*database, &cfg.Database}, {*agentListen, &cfg.AgentListen}, {*apiListen, &cfg.APIListen}} {
		if o.flag != "" {
			*o.dst = o.flag
		}
	}
	if *adminPassword == "" {
		*adminPassword = os.Getenv("PALISADE_ADMIN_PASSWORD")
	}
	cfg.Defaults()
	log := newLogger(cfg.LogLevel)
	c, err := console.Open(ctx, cfg, *adminPassword, os.Stdout, log)
	if err != nil {
		return err
	}
	_, agentPort, _ := net.SplitHostPort(c.AgentAddr())
	fmt.Printf("Palisade console\n  web UI and API: %s  (log in as admin)\n  agent API:      port %s\n  CA pin:         %s\n  CLI:            palisade hosts list   (credentials in %s)\n\n",
		c.APIURL(), agentPort, c.CA.Pin(), filepath.Join(c.DataDir(), "cli.json"))
	if !*localAgent {
		return c.Serve(ctx)
	}
	agentCtx, stopAgent := context.WithCancel(ctx)
	agentDone := make(chan struct{})
	go func() {
		defer close(agentDone)
		if err := runLocalAgent(agentCtx, c, log); err != nil {
			log.Error("local agent stopped", "err", err)
		}
	}()
	err = c.Serve(ctx)
	stopAgent()
	// The agent gives back what it took from the host (its audit rules and socket) as it
	// stops; wait for that rather than exiting under it.
	select {
	case <-agentDone:
	case <-time.After(15 * time.Second):
		log.Warn("local agent did not stop within 15s")
	}
	return err
}

// runLocalAgent enrolls (once) and runs an agent for the console's own machine, through the
// same enrollment and mutual-TLS stream as any other agent.
func runLocalAgent(ctx context.Context, c *console.Console, log *slog.Logger) error {
	dir := filepath.Join(c.DataDir(), "agent")
	_, port, _ := net.SplitHostPort(c.AgentAddr())
	if _, err := agent.LoadIdentity(dir); err != nil {
		tok, err := api.NewEnrollToken(ctx, c.Store, "default", 10*time.Minute, "console")
		if err != nil {
			return fmt.Errorf("create enrollment token: %w", err)
		}
		id, err := agent.Enroll(ctx, agent.EnrollOptions{DataDir: dir, Server: "127.0.0.1:" + port, Token: tok.Token,
			CAPin: c.CA.Pin(), AgentVersion: agent.Version})
		if err != nil {
			return err
		}
		fmt.Printf("Local agent enrolled as host %s.\n", id.HostID)
	}
	a, err := agent.New(agent.Config{DataDir: dir}, log.With("part", "local-agent"))
	if err != nil {
		return err
	}
	defer a.Close()
	return a.Run(ctx)
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
