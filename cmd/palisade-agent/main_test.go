package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestConfigFile(t *testing.T) {
	for _, tt := range []struct {
		name, yaml, wantErr string
		check               func(t *testing.T, fc fileConfig)
	}{
		{name: "empty file means defaults", yaml: "", check: func(t *testing.T, fc fileConfig) {
			cfg, err := fc.agentConfig()
			if err != nil || cfg.HeartbeatInterval != 0 || cfg.SpoolMaxBytes != 0 {
				t.Errorf("got %+v, %v", cfg, err)
			}
		}},
		{name: "every key", yaml: "data_dir: /srv/agent\nheartbeat_interval: 30s\nlog_level: debug\nbudget:\n  cpu_percent: 2.5\n  memory_mb: 64\nspool:\n  max_mb: 32\n  sync: true\nauth:\n  logs: [/var/log/auth.log]\n  journal: false\n  geoip: /srv/GeoLite2-City.mmdb\n",
			check: func(t *testing.T, fc fileConfig) {
				cfg, err := fc.agentConfig()
				if err != nil {
					t.Fatal(err)
				}
				if cfg.DataDir != "/srv/agent" || cfg.HeartbeatInterval != 30*time.Second || cfg.Budget.CPUPercent != 2.5 ||
					cfg.Budget.MemoryBytes != 64<<20 || cfg.SpoolMaxBytes != 32<<20 || !cfg.SpoolSync ||
					len(cfg.Auth.Logs) != 1 || cfg.Auth.Journal == nil || *cfg.Auth.Journal || cfg.Auth.GeoIP != "/srv/GeoLite2-City.mmdb" {
					t.Errorf("got %+v", cfg)
				}
			}},
		{name: "unknown key names its line", yaml: "data_dir: /x\nspool:\n  max_size: 3\n", wantErr: "line 3"},
		{name: "bad heartbeat", yaml: "heartbeat_interval: soon\n", wantErr: "heartbeat_interval"},
		{name: "heartbeat too short", yaml: "heartbeat_interval: 10ms\n", wantErr: "heartbeat_interval"},
		{name: "bad log level", yaml: "log_level: loud\n", wantErr: "log_level"},
		{name: "negative cpu", yaml: "budget:\n  cpu_percent: -1\n", wantErr: "budget.cpu_percent"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "agent.yml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			fc, err := loadConfig(path)
			if err == nil {
				_, err = fc.agentConfig()
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want an error mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, fc)
		})
	}
}

func TestExitCodes(t *testing.T) {
	if got := exitCode(runStatus([]string{"--data-dir", t.TempDir()})); got != exitNotEnrolled {
		t.Errorf("status of an unenrolled agent: exit %d, want %d", got, exitNotEnrolled)
	}
	if got := exitCode(runEnroll(t.Context(), []string{"--server", "127.0.0.1:1"})); got != exitUsage {
		t.Errorf("enroll without token and pin: exit %d, want %d", got, exitUsage)
	}
	if got := exitCode(runAgent(t.Context(), []string{"--data-dir", t.TempDir()})); got != exitNotEnrolled {
		t.Errorf("run before enrolling: exit %d, want %d", got, exitNotEnrolled)
	}
	if got := exitCode(runStatus([]string{"extra"})); got != exitUsage {
		t.Errorf("unexpected argument: exit %d, want %d", got, exitUsage)
	}
}

// TestDefaultSignatures: the standalone scan takes every kind of signature file LoadDB reads
// from the default directory, and nothing else.
func TestDefaultSignatures(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"main.cvd", "daily.cld", "local.hdb", "pe.mdb", "bundle.psig", "body.ndb", "README.txt", "old.hdb.bak"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, p := range defaultSignatures(dir) {
		got = append(got, filepath.Base(p))
	}
	if want := []string{"body.ndb", "bundle.psig", "daily.cld", "local.hdb", "main.cvd", "pe.mdb"}; !slices.Equal(got, want) {
		t.Errorf("default signatures %v, want %v", got, want)
	}
	if got := defaultSignatures(filepath.Join(dir, "missing")); got != nil {
		t.Errorf("missing directory: %v", got)
	}
}

// TestScanReportsSkippedSignatures: lines outside the supported subset are named on stderr with
// their reason, and the scan goes on with the others.
func TestScanReportsSkippedSignatures(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "t.ndb")
	if err := os.WriteFile(db, []byte("Good:0:*:70616c6973616465\nBad:0:*:????\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "f")
	if err := os.WriteFile(target, []byte("a palisade marker"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	err := scan(t.Context(), &stdout, &stderr, []string{db}, nil, false, 1, 1<<20, []string{target})
	if exitCode(err) != 1 || !strings.Contains(stdout.String(), "Good") {
		t.Errorf("scan: %v\n%s", err, stdout.String())
	}
	if !strings.Contains(stderr.String(), "1 signature line(s) skipped") || !strings.Contains(stderr.String(), "t.ndb:2: Bad:") {
		t.Errorf("stderr %q", stderr.String())
	}
}

// TestScanTakesRulesBesideSignatures: a directory given with --db contributes its YARA files.
func TestScanTakesRulesBesideSignatures(t *testing.T) {
	dir, sigs := t.TempDir(), t.TempDir()
	rule := "rule Beside { strings: $a = \"palisade-beside-marker\" condition: $a }\n"
	if err := os.WriteFile(filepath.Join(sigs, "r.yara"), []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "f")
	if err := os.WriteFile(target, []byte("x palisade-beside-marker x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	err := scan(t.Context(), &stdout, &stderr, []string{sigs}, nil, false, 1, 1<<20, []string{target})
	if exitCode(err) != 1 || !strings.Contains(stdout.String(), "Beside (yara)") {
		t.Errorf("scan: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
}
