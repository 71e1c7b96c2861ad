// Command palisade-agent is the Palisade agent: "enroll" joins a console, "run" protects the
// host, "status" shows the local state.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/palisade-cwpp/palisade/internal/agent"
	"github.com/palisade-cwpp/palisade/internal/agent/budget"
	"github.com/palisade-cwpp/palisade/internal/agent/respond"
	"github.com/palisade-cwpp/palisade/internal/agent/source/procevents"
)

const defaultDataDir = "/var/lib/palisade-agent"

// Exit codes.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitNotEnrolled = 3
)

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage(os.Stdout)
		if len(os.Args) < 2 {
			os.Exit(exitUsage)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "enroll":
		err = runEnroll(ctx, os.Args[2:])
	case "run":
		err = runAgent(ctx, os.Args[2:])
	case "status":
		err = runStatus(os.Args[2:])
	case "firewall":
		err = runFirewall(ctx, os.Args[2:])
	case "scan":
		err = runScan(ctx, os.Args[2:])
	case "version":
		fmt.Println(agent.Version)
	default:
		fmt.Fprintf(os.Stderr, "palisade-agent: unknown command %q\n\n", os.Args[1])
		usage(os.Stderr)
		os.Exit(exitUsage)
	}
	stop()
	os.Exit(exitCode(err))
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: palisade-agent COMMAND [flags]

Commands:
  enroll   join a console with a one-time token (--server, --token, --ca-pin)
  run      run the agent
  status   show the local agent's identity and spool
  firewall list the agent's IP blocks, or remove its firewall table (teardown)
  scan     scan files for malware (exit 0 clean, 1 infected, 2 error)
  version  print the version

Run 'palisade-agent COMMAND --help' for a command's flags.
`)
}

type usageError struct{ error }

func exitCode(err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	fmt.Fprintln(os.Stderr, "palisade-agent:", err)
	var ue usageError
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, agent.ErrNotEnrolled):
		return exitNotEnrolled
	}
	return exitError
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	return nil
}

func runEnroll(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("enroll", flag.ContinueOnError)
	server := fs.String("server", "", "console agent API address, HOST:PORT")
	token := fs.String("token", "", "one-time enrollment token (or env PALISADE_ENROLL_TOKEN)")
	pin := fs.String("ca-pin", "", "the console CA pin, sha256:... (shown by the console)")
	dataDir := fs.String("data-dir", defaultDataDir, "where the agent keeps its identity and spool")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *token == "" {
		*token = os.Getenv("PALISADE_ENROLL_TOKEN")
	}
	if *server == "" || *token == "" || *pin == "" {
		return usageError{errors.New("enroll: --server, --token and --ca-pin are required")}
	}
	id, err := agent.Enroll(ctx, agent.EnrollOptions{DataDir: *dataDir, Server: *server, Token: *token, CAPin: *pin, AgentVersion: agent.Version})
	if err != nil {
		return err
	}
	fmt.Printf("enrolled as host %s with console %s; start the agent with: palisade-agent run --data-dir %s\n", id.HostID, id.Server, *dataDir)
	return nil
}

// fileConfig is the agent's YAML configuration (docs/CONFIGURATION.md).
type fileConfig struct {
	DataDir           string `yaml:"data_dir"`
	HeartbeatInterval string `yaml:"heartbeat_interval"`
	LogLevel          string `yaml:"log_level"`
	Budget            struct {
		CPUPercent float64 `yaml:"cpu_percent"`
		MemoryMB   uint64  `yaml:"memory_mb"`
	} `yaml:"budget"`
	Spool struct {
		MaxMB int64 `yaml:"max_mb"`
		Sync  bool  `yaml:"sync"`
	} `yaml:"spool"`
	Auth struct {
		Disabled bool     `yaml:"disabled"`
		Logs     []string `yaml:"logs"`
		Journal  *bool    `yaml:"journal"`
		Wtmp     string   `yaml:"wtmp"`
		Btmp     string   `yaml:"btmp"`
		GeoIP    string   `yaml:"geoip"`
	} `yaml:"auth"`
	Malware struct {
		Disabled   bool     `yaml:"disabled"`
		Signatures []string `yaml:"signatures"`
		YARA       []string `yaml:"yara"`
		Realtime   []string `yaml:"realtime"`
		Workers    int      `yaml:"workers"`
		Reload     string   `yaml:"reload"`
	} `yaml:"malware"`
	Behavior struct {
		Disabled bool              `yaml:"disabled"`
		Events   procevents.Config `yaml:"events"`
		Rules    []string          `yaml:"rules"`
		Sigma    []string          `yaml:"sigma"`
	} `yaml:"behavior"`
	Inventory struct {
		Disabled     bool      `yaml:"disabled"`
		Interval     string    `yaml:"interval"`
		Root         string    `yaml:"root"`
		LanguageDirs *[]string `yaml:"language_dirs"`
	} `yaml:"inventory"`
}

func loadConfig(path string) (fileConfig, error) {
	var fc fileConfig
	if path == "" {
		return fc, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fc, fmt.Errorf("read config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		return fc, fmt.Errorf("config %s: %w", path, err)
	}
	return fc, nil
}

func (fc fileConfig) agentConfig() (agent.Config, error) {
	cfg := agent.Config{
		DataDir:       fc.DataDir,
		Budget:        budget.Config{CPUPercent: fc.Budget.CPUPercent, MemoryBytes: fc.Budget.MemoryMB << 20},
		SpoolMaxBytes: fc.Spool.MaxMB << 20,
		SpoolSync:     fc.Spool.Sync,
		Auth: agent.AuthConfig{Disabled: fc.Auth.Disabled, Logs: fc.Auth.Logs, Journal: fc.Auth.Journal,
			Wtmp: fc.Auth.Wtmp, Btmp: fc.Auth.Btmp, GeoIP: fc.Auth.GeoIP},
		Malware: agent.MalwareConfig{Disabled: fc.Malware.Disabled, Signatures: fc.Malware.Signatures, YARA: fc.Malware.YARA,
			Realtime: fc.Malware.Realtime, Workers: fc.Malware.Workers},
		Behavior:  agent.BehaviorConfig{Disabled: fc.Behavior.Disabled, Events: fc.Behavior.Events, Rules: fc.Behavior.Rules, Sigma: fc.Behavior.Sigma},
		Inventory: agent.InventoryConfig{Disabled: fc.Inventory.Disabled, Root: fc.Inventory.Root},
	}
	if fc.Inventory.LanguageDirs != nil {
		cfg.Inventory.LanguageDirs = append([]string{}, *fc.Inventory.LanguageDirs...)
	}
	if fc.Inventory.Interval != "" {
		d, err := time.ParseDuration(fc.Inventory.Interval)
		if err != nil || d < time.Minute {
			return cfg, fmt.Errorf("inventory.interval: %q is not a duration of at least 1m", fc.Inventory.Interval)
		}
		cfg.Inventory.Interval = d
	}
	if fc.Malware.Reload != "" {
		d, err := time.ParseDuration(fc.Malware.Reload)
		if err != nil || d < time.Second {
			return cfg, fmt.Errorf("malware.reload: %q is not a duration of at least 1s", fc.Malware.Reload)
		}
		cfg.Malware.Reload = d
	}
	if fc.HeartbeatInterval != "" {
		d, err := time.ParseDuration(fc.HeartbeatInterval)
		if err != nil || d < time.Second {
			return cfg, fmt.Errorf("heartbeat_interval: %q is not a duration of at least 1s", fc.HeartbeatInterval)
		}
		cfg.HeartbeatInterval = d
	}
	if fc.Budget.CPUPercent < 0 || fc.Budget.CPUPercent > 100*64 {
		return cfg, fmt.Errorf("budget.cpu_percent: %v out of range", fc.Budget.CPUPercent)
	}
	switch fc.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		return cfg, fmt.Errorf("log_level: %q is not one of debug, info, warn, error", fc.LogLevel)
	}
	return cfg, nil
}

func runAgent(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	configPath := fs.String("config", "", "YAML configuration file")
	dataDir := fs.String("data-dir", "", "data directory (default "+defaultDataDir+")")
	if err := parse(fs, args); err != nil {
		return err
	}
	fc, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	if *dataDir != "" {
		fc.DataDir = *dataDir
	}
	if fc.DataDir == "" {
		fc.DataDir = defaultDataDir
	}
	cfg, err := fc.agentConfig()
	if err != nil {
		return err
	}
	var level slog.Level
	level.UnmarshalText([]byte(fc.LogLevel))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	a, err := agent.New(cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	return a.Run(ctx)
}

func runStatus(args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	dataDir := fs.String("data-dir", defaultDataDir, "data directory")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	st, err := agent.ReadStatus(*dataDir)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	fmt.Printf("host:          %s\nconsole:       %s\nca pin:        %s\nspool records: %d unacknowledged (%d bytes), %d dropped\n",
		st.HostID, st.Server, st.CAPin, st.SpoolDepth, st.SpoolBytes, st.SpoolDropped)
	if st.SpoolError != "" {
		fmt.Printf("spool:         %s\n", st.SpoolError)
	}
	return nil
}

// runFirewall lists the blocks in the agent's firewall table or removes the table. Blocks
// outlive the agent by design (the kernel expires them); teardown is for uninstalling.
func runFirewall(ctx context.Context, args []string) error {
	if len(args) != 1 || (args[0] != "list" && args[0] != "teardown") {
		return usageError{errors.New("firewall: want list or teardown")}
	}
	fw, err := respond.Detect(ctx)
	if err != nil {
		return err
	}
	defer fw.Close()
	if args[0] == "teardown" {
		if err := fw.Teardown(ctx); err != nil {
			return err
		}
		fmt.Printf("removed the agent's %s rules and blocks\n", fw.Name())
		return nil
	}
	entries, err := fw.List(ctx)
	if err != nil {
		return err
	}
	for _, e := range entries {
		left := "until removed"
		if e.Remaining > 0 {
			left = e.Remaining.Round(time.Second).String() + " left"
		}
		fmt.Printf("%s\t%s\n", e.Prefix, left)
	}
	fmt.Fprintf(os.Stderr, "%d blocks (%s)\n", len(entries), fw.Name())
	return nil
}
