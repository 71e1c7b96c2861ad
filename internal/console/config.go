package console

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the console's configuration, read from one YAML file; every key is documented in
// docs/CONFIGURATION.md. Zero values mean the defaults.
type Config struct {
	// DataDir holds the CA, the server certificate, the SQLite database and cli.json.
	DataDir string `yaml:"data_dir"`
	// Database is a postgres:// URL, or empty for SQLite in DataDir.
	Database string `yaml:"database"`
	// AgentListen is the gRPC address agents connect to.
	AgentListen string `yaml:"agent_listen"`
	// APIListen is the HTTPS address of the user API and web UI.
	APIListen string `yaml:"api_listen"`
	// Hostnames are the names and addresses agents and browsers use to reach the console; they
	// go into the server certificate. Default: the machine's hostname, localhost, 127.0.0.1, ::1.
	Hostnames []string `yaml:"hostnames"`
	// AggregationWindow folds repeated findings with one key into one open event.
	AggregationWindow Duration `yaml:"aggregation_window"`
	// OfflineAfter marks a host offline when no heartbeat came for this long.
	OfflineAfter Duration `yaml:"offline_after"`
	// SessionTTL is how long a browser login lasts.
	SessionTTL Duration `yaml:"session_ttl"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
	// AgentBinary is the palisade-agent executable the console serves to the install script.
	// Default: palisade-agent next to the running console executable, when it exists.
	AgentBinary string `yaml:"agent_binary"`
	// Vulns configures the vulnerability data.
	Vulns VulnsConfig `yaml:"vulns"`
}

// VulnsConfig says where vulnerability data comes from besides operators' imports.
type VulnsConfig struct {
	// Sources are OSV archives fetched on schedule: https:// URLs such as
	// https://osv-vulnerabilities.storage.googleapis.com/Debian/all.zip, or local files.
	Sources []string `yaml:"sources"`
	// FetchInterval between fetches; default 24h.
	FetchInterval Duration `yaml:"fetch_interval"`
}

// Duration is a time.Duration written as "90s", "1h" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (e.g. 90s, 1h)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.DataDir == "" {
		c.DataDir = "data"
	}
	if c.AgentListen == "" {
		c.AgentListen = ":8444"
	}
	if c.APIListen == "" {
		c.APIListen = ":8443"
	}
	if len(c.Hostnames) == 0 {
		c.Hostnames = []string{"localhost", "127.0.0.1", "::1"}
		if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" {
			c.Hostnames = append(c.Hostnames, h)
		}
	}
	if c.AggregationWindow == 0 {
		c.AggregationWindow = Duration(time.Hour)
	}
	if c.OfflineAfter == 0 {
		c.OfflineAfter = Duration(60 * time.Second)
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = Duration(12 * time.Hour)
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.AgentBinary == "" {
		if exe, err := os.Executable(); err == nil {
			if p := filepath.Join(filepath.Dir(exe), "palisade-agent"); fileExists(p) {
				c.AgentBinary = p
			}
		}
	}
	if c.Vulns.FetchInterval == 0 {
		c.Vulns.FetchInterval = Duration(24 * time.Hour)
	}
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// Validate names the first bad key.
func (c *Config) Validate() error {
	var errs []error
	if c.AggregationWindow < 0 {
		errs = append(errs, errors.New("aggregation_window: must not be negative"))
	}
	if c.OfflineAfter < Duration(5*time.Second) {
		errs = append(errs, errors.New("offline_after: must be at least 5s"))
	}
	if c.Vulns.FetchInterval < Duration(time.Minute) {
		errs = append(errs, errors.New("vulns.fetch_interval: must be at least 1m"))
	}
	for i, src := range c.Vulns.Sources {
		if src == "" || (strings.Contains(src, "://") && !strings.HasPrefix(src, "https://") && !strings.HasPrefix(src, "http://")) {
			errs = append(errs, fmt.Errorf("vulns.sources[%d]: %q is neither an http(s) URL nor a file path", i, src))
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log_level: %q is not one of debug, info, warn, error", c.LogLevel))
	}
	return errors.Join(errs...)
}

// LoadConfig reads a YAML file strictly: unknown keys are errors naming the line.
func LoadConfig(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}
