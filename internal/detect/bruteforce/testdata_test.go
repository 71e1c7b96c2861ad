package bruteforce_test

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bf "github.com/palisade-cwpp/palisade/internal/detect/bruteforce"
)

var update = flag.Bool("update", false, "rewrite testdata/*.want from the parser (then review the diff)")

// TestSampleLogs parses the sample logs in testdata, written in the formats of OpenSSH 7.4
// (CentOS 7), 8.2 (Ubuntu 20.04), 8.9 (Ubuntu 22.04) and 9.2 (Debian 12, RFC 3339 timestamps),
// and compares every event with the reviewed list in the .want file beside it (line number,
// outcome, kind, attempts, user, source, port, method), then checks the findings of the whole log.
func TestSampleLogs(t *testing.T) {
	cases := []struct {
		file     string
		findings []string
	}{
		{"openssh-7.4-centos7.log", []string{"bruteforce.user-enumeration|203.0.113.7", "bruteforce.password-guessing|203.0.113.9"}},
		{"openssh-8.2-ubuntu2004.log", []string{"bruteforce.password-guessing|198.51.100.23"}},
		{"openssh-8.9-ubuntu2204.log", []string{"bruteforce.password-guessing|203.0.113.50", "bruteforce.succeeded|203.0.113.50"}},
		{"openssh-9.2-debian12.log", []string{"bruteforce.distributed|backup", "bruteforce.password-guessing|192.0.2.33"}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", c.file))
			if err != nil {
				t.Fatal(err)
			}
			p := bf.Parser{Year: 2026, Location: time.UTC}
			d := newDetector(t, nil)
			var got bytes.Buffer
			var keys []string
			sc := bufio.NewScanner(bytes.NewReader(data))
			for n := 1; sc.Scan(); n++ {
				e, ok := p.ParseLine(sc.Bytes())
				if !ok {
					continue
				}
				src := "-"
				if e.Source.IsValid() {
					src = e.Source.String()
				}
				fmt.Fprintf(&got, "%d %s %s %d %q %s %d %q\n", n, e.Outcome, e.Kind, e.Attempts, e.User, src, e.Port, e.Method)
				keys = append(keys, ruleKeys(feed(t, d, e))...)
			}
			wantFile := filepath.Join("testdata", strings.TrimSuffix(c.file, ".log")+".want")
			if *update {
				if err := os.WriteFile(wantFile, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(wantFile)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != string(want) {
				t.Errorf("events differ from %s:\n got:\n%s\nwant:\n%s", wantFile, got.String(), want)
			}
			if !slices.Equal(keys, c.findings) {
				t.Errorf("findings %q, want %q", keys, c.findings)
			}
		})
	}
}
