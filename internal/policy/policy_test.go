package policy

import (
	"strings"
	"testing"
	"time"
)

func TestParseKeepsDefaultsForMissingKeys(t *testing.T) {
	p, err := Parse([]byte(`{"bruteforce":{"enabled":true,"failures_per_source":3},"response":{"auto_block":false}}`))
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	if p.BruteForce.FailuresPerSource != 3 || p.Response.AutoBlock || !p.Login.Enabled ||
		p.Login.Rules != d.Login.Rules || time.Duration(p.Response.BaseTTL) != 10*time.Minute {
		t.Errorf("got %+v", p)
	}
}

func TestParseRefusesBadPolicies(t *testing.T) {
	for _, tt := range []struct{ name, body, want string }{
		{"unknown key", `{"bruteforce":{"treshold":3}}`, "unknown field"},
		{"bad duration", `{"bruteforce":{"failure_window":"soon"}}`, "duration"},
		{"negative threshold", `{"bruteforce":{"failures_per_source":-1}}`, "failures_per_source"},
		{"bad allowed source", `{"login":{"allowed_sources":["10.0.0.0/33"]}}`, "10.0.0.0/33"},
		{"bad home region", `{"login":{"home_regions":["Germany"]}}`, "Germany"},
		{"bad hours", `{"login":{"allowed_hours":"9 to 5"}}`, "9 to 5"},
		{"allow entry matching everything", `{"login":{"allow":[{"comment":"all"}]}}`, "login.allow[0]"},
		{"bad block allowlist", `{"response":{"allow":["not-an-ip"]}}`, "response.allow[0]"},
		{"escalation below 1", `{"response":{"escalation":0.5}}`, "response.escalation"},
		{"base longer than max", `{"response":{"base_ttl":"2h","max_ttl":"1h"}}`, "base_ttl"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestEncodeRoundTripAndVersion(t *testing.T) {
	p, err := Parse([]byte(`{"login":{"home_regions":["DE/Bavaria"],"allowed_hours":"Mon-Fri 08:00-19:00 Europe/Berlin","allow":[{"users":["deploy"],"sources":["192.0.2.0/24"]}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	body, v1 := p.Encode()
	q, err := Parse(body)
	if err != nil {
		t.Fatalf("re-parse %s: %v", body, err)
	}
	if _, v2 := q.Encode(); v1 != v2 {
		t.Errorf("version changed across a round trip: %s != %s", v1, v2)
	}
	if _, vd := Default().Encode(); vd == v1 {
		t.Error("different policies share a version")
	}
}

func TestParsePrefix(t *testing.T) {
	for in, want := range map[string]string{"203.0.113.7": "203.0.113.7/32", "::ffff:203.0.113.7": "203.0.113.7/32",
		"10.1.2.3/8": "10.0.0.0/8", "2001:db8::1": "2001:db8::1/128"} {
		p, err := ParsePrefix(in)
		if err != nil || p.String() != want {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"bruteforce":{"enabled":true},"login":{"allow":[{"users":["a"]}]},"response":{"allow":["10.0.0.0/8"]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		body, _ := p.Encode()
		if _, err := Parse(body); err != nil {
			t.Fatalf("a valid policy does not re-parse: %s: %v", body, err)
		}
	})
}

func TestLoginLearningPeriodIsADurationString(t *testing.T) {
	p, err := Parse([]byte(`{"login":{"learning_period":"72h"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Login.EngineConfig().LearningPeriod; got != 72*time.Hour {
		t.Errorf("engine learning period %s, want 72h", got)
	}
	body, _ := p.Encode()
	if !strings.Contains(string(body), `"learning_period":"72h0m0s"`) {
		t.Errorf("encoded: %s", body)
	}
}

func TestForHostKeepsOnlyEntriesForTheHost(t *testing.T) {
	p, err := Parse([]byte(`{"login":{"allow":[
		{"users":["a"]},
		{"users":["b"],"scope":{"hosts":["h-1"]}},
		{"users":["c"],"scope":{"groups":["web"]}},
		{"users":["d"],"scope":{"hosts":["h-2"],"groups":["db"]}}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	got := p.ForHost("h-1", "web").Login.Allow
	if len(got) != 3 || got[0].Users[0] != "a" || got[1].Users[0] != "b" || got[2].Users[0] != "c" {
		t.Fatalf("allow for h-1/web: %+v", got)
	}
	if got[2].Scope.Applies("h-9", "web") || !got[2].Scope.Applies("h-1", "") {
		t.Errorf("a group entry should now name the host itself: %+v", got[2].Scope)
	}
	if _, err := Parse(mustEncode(p.ForHost("h-1", "web"))); err != nil {
		t.Errorf("localised policy does not validate: %v", err)
	}
}

func mustEncode(p Policy) []byte { b, _ := p.Encode(); return b }

func TestMalwareAllowlistNeedsSHA256(t *testing.T) {
	if _, err := Parse([]byte(`{"malware":{"allow_sha256":["abc"]}}`)); err == nil || !strings.Contains(err.Error(), "malware.allow_sha256[0]") {
		t.Fatalf("got %v", err)
	}
	p, err := Parse([]byte(`{"malware":{"allow_sha256":["` + strings.Repeat("ab", 32) + `"]}}`))
	if err != nil || !p.Malware.Realtime || len(p.Malware.AllowSHA256) != 1 {
		t.Fatalf("got %+v, %v", p.Malware, err)
	}
}
