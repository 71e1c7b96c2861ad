package finding

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func validFinding() Finding {
	return Finding{
		ID:       "0123456789abcdef0123456789abcdef",
		RuleID:   "bruteforce.ssh-password-guessing",
		Category: CategoryBruteForce,
		Severity: SeverityHigh,
		Title:    "SSH password guessing from 192.0.2.7",
		Time:     time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
		DedupKey: "192.0.2.7",
		Evidence: Evidence{Lines: []string{"Failed password for root from 192.0.2.7"}, SourceIP: "192.0.2.7", Count: 12},
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(f *Finding)
		wantErr string // substring; empty means valid
	}{
		{"valid", func(f *Finding) {}, ""},
		{"minimal", func(f *Finding) {
			*f = Finding{ID: "x", RuleID: "a.b", Category: CategoryAgent, Title: "t", Time: time.Unix(1, 0)}
		}, ""},
		{"missing id", func(f *Finding) { f.ID = "" }, "id must be"},
		{"id 64", func(f *Finding) { f.ID = strings.Repeat("a", 64) }, ""},
		{"id too long", func(f *Finding) { f.ID = strings.Repeat("a", 65) }, "id must be"},
		{"missing rule", func(f *Finding) { f.RuleID = "" }, "rule_id"},
		{"rule upper case", func(f *Finding) { f.RuleID = "Bad" }, "rule_id"},
		{"rule upper case with dot", func(f *Finding) { f.RuleID = "Bruteforce.ssh" }, "rule_id"},
		{"rule without dot", func(f *Finding) { f.RuleID = "x" }, "rule_id"},
		{"rule empty segment", func(f *Finding) { f.RuleID = "a..b" }, "rule_id"},
		{"rule leading dot", func(f *Finding) { f.RuleID = ".a.b" }, "rule_id"},
		{"rule trailing dot", func(f *Finding) { f.RuleID = "a.b." }, "rule_id"},
		{"rule leading dash", func(f *Finding) { f.RuleID = "a.-b" }, "rule_id"},
		{"rule underscore", func(f *Finding) { f.RuleID = "a.b_c" }, "rule_id"},
		{"rule space", func(f *Finding) { f.RuleID = "a.b c" }, "rule_id"},
		{"rule newline", func(f *Finding) { f.RuleID = "a.b\n" }, "rule_id"},
		{"rule three segments", func(f *Finding) { f.RuleID = "vuln.cve.2024-1234" }, ""},
		{"rule 128", func(f *Finding) { f.RuleID = "a." + strings.Repeat("b", 126) }, ""},
		{"rule too long", func(f *Finding) { f.RuleID = "a." + strings.Repeat("b", 127) }, "rule_id"},
		{"missing category", func(f *Finding) { f.Category = "" }, "unknown category"},
		{"unknown category", func(f *Finding) { f.Category = "ransomware" }, "unknown category"},
		{"category case", func(f *Finding) { f.Category = "Malware" }, "unknown category"},
		{"severity negative", func(f *Finding) { f.Severity = -1 }, "unknown severity"},
		{"severity too high", func(f *Finding) { f.Severity = SeverityCritical + 1 }, "unknown severity"},
		{"severity critical", func(f *Finding) { f.Severity = SeverityCritical }, ""},
		{"missing title", func(f *Finding) { f.Title = "" }, "title must be"},
		{"title at limit", func(f *Finding) { f.Title = strings.Repeat("t", MaxTitle) }, ""},
		{"title too long", func(f *Finding) { f.Title = strings.Repeat("t", MaxTitle+1) }, "title must be"},
		{"missing time", func(f *Finding) { f.Time = time.Time{} }, "time is missing"},
		{"time past year 9999 in UTC", func(f *Finding) {
			f.Time = time.Date(9999, 12, 31, 23, 59, 0, 0, time.FixedZone("", -23*3600))
		}, "time"},
		{"time before year 1 in UTC", func(f *Finding) {
			f.Time = time.Date(1, 1, 1, 0, 0, 0, 0, time.FixedZone("", 3600))
		}, "time"},
		{"dedup key at limit", func(f *Finding) { f.DedupKey = strings.Repeat("k", MaxDedupKey) }, ""},
		{"dedup key too long", func(f *Finding) { f.DedupKey = strings.Repeat("k", MaxDedupKey+1) }, "dedup_key"},
		{"lines at limit", func(f *Finding) { f.Evidence.Lines = make([]string, MaxLines) }, ""},
		{"too many lines", func(f *Finding) { f.Evidence.Lines = make([]string, MaxLines+1) }, "evidence lines"},
		{"NUL in id", func(f *Finding) { f.ID = "a\x00b" }, "id contains a NUL byte"},
		{"NUL in title", func(f *Finding) { f.Title = "a\x00b" }, "title contains a NUL byte"},
		{"NUL in dedup key", func(f *Finding) { f.DedupKey = "\x00" }, "dedup_key contains a NUL byte"},
		{"NUL in action", func(f *Finding) { f.Action = "run\x00" }, "action contains a NUL byte"},
		{"NUL in evidence", func(f *Finding) {
			f.Evidence.Lines = []string{"a\x00b"}
			f.Evidence.Fields = map[string]string{"\x00": "\x00"}
		}, ""},
		{"several errors", func(f *Finding) { f.ID, f.Title = "", "" }, "title must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := validFinding()
			tt.mutate(&f)
			err := f.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("Validate() = nil, want error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestValidateReportsEveryError(t *testing.T) {
	var f Finding
	err := f.Validate()
	if err == nil {
		t.Fatal("empty finding validated")
	}
	for _, want := range []string{"id must be", "rule_id", "unknown category", "title must be", "time is missing"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestCategories(t *testing.T) {
	seen := map[Category]bool{}
	for _, c := range Categories {
		if !c.Valid() {
			t.Errorf("category %q not valid", c)
		}
		if seen[c] {
			t.Errorf("category %q listed twice", c)
		}
		seen[c] = true
		f := validFinding()
		f.Category = c
		if err := f.Validate(); err != nil {
			t.Errorf("category %q: %v", c, err)
		}
	}
}

func TestSeverityRoundTrip(t *testing.T) {
	for s := SeverityInfo; s <= SeverityCritical; s++ {
		if !s.Valid() {
			t.Errorf("%d not valid", s)
		}
		name := s.String()
		for _, in := range []string{name, strings.ToUpper(name), strings.ToUpper(name[:1]) + name[1:]} {
			got, err := ParseSeverity(in)
			if err != nil || got != s {
				t.Errorf("ParseSeverity(%q) = %v, %v; want %v", in, got, err, s)
			}
		}
	}
	want := []string{"info", "low", "medium", "high", "critical"}
	for i, w := range want {
		if got := Severity(i).String(); got != w {
			t.Errorf("Severity(%d).String() = %q, want %q", i, got, w)
		}
	}
	for _, bad := range []Severity{-1, 5, 1 << 30} {
		if bad.Valid() {
			t.Errorf("%d valid", bad)
		}
		if got := bad.String(); !strings.HasPrefix(got, "severity(") {
			t.Errorf("Severity(%d).String() = %q", bad, got)
		}
	}
	for _, bad := range []string{"", "bogus", "severity(5)", " high", "high ", "0", "crit"} {
		if _, err := ParseSeverity(bad); err == nil {
			t.Errorf("ParseSeverity(%q) succeeded", bad)
		} else if !strings.Contains(err.Error(), "info, low, medium, high, critical") {
			t.Errorf("ParseSeverity(%q) error %q does not list the names", bad, err)
		}
	}
}

func TestKey(t *testing.T) {
	f := Finding{RuleID: "bruteforce.ssh-password-guessing"}
	if got := f.Key(); got != "bruteforce.ssh-password-guessing" {
		t.Errorf("Key() without dedup key = %q", got)
	}
	f.DedupKey = "192.0.2.7"
	if got := f.Key(); got != "bruteforce.ssh-password-guessing|192.0.2.7" {
		t.Errorf("Key() = %q", got)
	}
	// Keys of different rules never collide, since rule IDs cannot contain '|'.
	a := Finding{RuleID: "a.b", DedupKey: "c"}
	b := Finding{RuleID: "a.b|c"}
	if b.Validate() == nil {
		t.Error("rule ID with '|' validated")
	}
	if a.Key() == "" {
		t.Error("empty key")
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := NewID()
		if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Fatalf("NewID() = %q", id)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %q", id)
		}
		seen[id] = true
	}
}

func TestJSONRoundTrip(t *testing.T) {
	f := validFinding()
	f.MITRE = []string{"T1110.001"}
	f.Evidence.Hashes = map[string]string{"sha256": strings.Repeat("0", 64)}
	f.Evidence.Process = []Process{{PID: 1, Exe: "/sbin/init"}}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	var g Finding
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	if g.Key() != f.Key() || !g.Time.Equal(f.Time) || g.Severity != f.Severity || g.Evidence.Process[0].Exe != "/sbin/init" {
		t.Fatalf("round trip changed the finding: %+v", g)
	}
}

// FuzzFindingJSON feeds arbitrary JSON to the decoder the console uses on agents' findings. Any
// finding that validates must be storable and servable: it marshals back to JSON, also once its
// time went through the store's UTC-millisecond representation.
func FuzzFindingJSON(f *testing.F) {
	good, _ := json.Marshal(validFinding())
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"id":"x","rule_id":"a.b","category":"agent","severity":4,"title":"t","time":"2025-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"id":"x","rule_id":"a.b","category":"agent","severity":4,"title":"t","time":"9999-12-31T23:59:59-23:59"}`))
	f.Add([]byte(`{"id":"x","rule_id":"a.b","category":"agent","severity":4,"title":"t","time":"0000-01-01T00:00:00+01:00"}`))
	f.Add([]byte(`{"id":"x","rule_id":"a.b","category":"vuln","severity":-1,"title":"t","time":"2025-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"id":"x","rule_id":"a.b","category":"vuln","severity":1e300,"title":"t","time":"2025-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"id":"\ud800","rule_id":"a.b","category":"login","severity":0,"title":"\u0000","time":"2025-01-01T00:00:00.123456789+14:00","evidence":{"lines":["\xff"],"hashes":{"a":"b"},"process":[{"pid":1}],"count":-5}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fd Finding
		if err := json.Unmarshal(b, &fd); err != nil {
			return
		}
		_ = fd.Key()
		if err := fd.Validate(); err != nil {
			return
		}
		if fd.Key() == "" || !strings.HasPrefix(fd.Key(), fd.RuleID) {
			t.Fatalf("Key() = %q for rule %q", fd.Key(), fd.RuleID)
		}
		if _, err := json.Marshal(fd); err != nil {
			t.Fatalf("valid finding does not marshal: %v", err)
		}
		for _, v := range []string{fd.ID, fd.RuleID, fd.Title, fd.DedupKey, fd.Action, string(fd.Category)} {
			if strings.IndexByte(v, 0) >= 0 {
				t.Fatalf("valid finding with NUL in %q", v)
			}
		}
		stored := time.UnixMilli(fd.Time.UnixMilli()).UTC()
		if _, err := json.Marshal(stored); err != nil {
			t.Fatalf("valid finding's time %v does not marshal once stored: %v", fd.Time, err)
		}
	})
}
