package task

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		typ, params, wantErr string
	}{
		{CollectFacts, ``, ""},
		{CollectFacts, `{}`, ""},
		{CollectFacts, `{"x":1}`, "unknown field"},
		{BlockIP, `{"prefix":"203.0.113.7","ttl":"1h","reason":"scanner"}`, ""},
		{BlockIP, `{"prefix":"2001:db8::/48"}`, ""},
		{BlockIP, `{"prefix":"::ffff:203.0.113.7"}`, ""},
		{BlockIP, `{"prefix":"127.0.0.1"}`, "never blocked"},
		{BlockIP, `{"prefix":"0.0.0.0/0"}`, "never blocked"},
		{BlockIP, `{"prefix":"64.0.0.0/2"}`, "wider than /8"},
		{BlockIP, `{"prefix":"2000::/3"}`, "wider than /16"},
		{BlockIP, `{"prefix":"example.com"}`, "prefix"},
		{BlockIP, `{"prefix":"203.0.113.7","ttl":"-1h"}`, "ttl"},
		{BlockIP, `{"prefix":"203.0.113.7","ttl":"9000h"}`, "ttl"},
		{BlockIP, `{"prefix":"203.0.113.7","reason":"` + strings.Repeat("x", 513) + `"}`, "reason"},
		{UnblockIP, `{"prefix":"203.0.113.0/24"}`, ""},
		{"shell", `{"cmd":"id"}`, "unknown task type"},
		{Quarantine, `{"path":"/tmp/x","sha256":"` + strings.Repeat("ab", 32) + `"}`, ""},
		{Quarantine, `{"path":"/tmp/x"}`, "sha256"},
		{Quarantine, `{"path":"tmp/x","sha256":"` + strings.Repeat("ab", 32) + `"}`, "absolute"},
		{Restore, `{"id":"q-0123"}`, ""},
		{Restore, `{}`, "id is required"},
		{Scan, `{"mode":"quick"}`, ""},
		{Scan, `{"mode":"custom","paths":["/var/www"]}`, ""},
		{Scan, `{"mode":"custom"}`, "1-100 paths"},
		{Scan, `{"mode":"custom","paths":["www"]}`, "absolute"},
		{Scan, `{"mode":"everything"}`, "quick, full or custom"},
	} {
		err := Validate(tt.typ, []byte(tt.params))
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("Validate(%s, %s) = %v, want %q", tt.typ, tt.params, err, tt.wantErr)
		}
	}
}

func TestDecodeCanonicalisesPrefix(t *testing.T) {
	var p BlockParams
	if err := Decode(BlockIP, []byte(`{"prefix":"::ffff:198.51.100.9"}`), &p); err != nil {
		t.Fatal(err)
	}
	if p.Prefix != "198.51.100.9/32" || p.ParsedPrefix().String() != "198.51.100.9/32" {
		t.Errorf("got %q", p.Prefix)
	}
}

func FuzzValidate(f *testing.F) {
	f.Add(BlockIP, []byte(`{"prefix":"203.0.113.7","ttl":"1h"}`))
	f.Add(CollectFacts, []byte(`{}`))
	f.Fuzz(func(t *testing.T, typ string, params []byte) {
		_ = Validate(typ, params)
	})
}
