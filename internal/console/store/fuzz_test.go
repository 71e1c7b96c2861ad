package store

import (
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// FuzzIngestFinding feeds findings built from arbitrary strings to one SQLite store, reused
// across iterations: IngestFindings either fails cleanly (nothing stored, the store still
// works) or stores the finding so that its event reads back with the same title. It must
// never panic. The store does not validate findings (the console does before calling it), so
// the strings reach it as they are.
func FuzzIngestFinding(f *testing.F) {
	s := openStore(f, filepath.Join(f.TempDir(), "fuzz.db"))
	clock := useClock(s, t0)
	addHost(f, s, "h-fuzz", "fuzz-01.example.com", "fuzz")

	for _, seed := range [][4]string{
		{sshRule, "203.0.113.7", "SSH password guessing from 203.0.113.7", "Mar 14 09:26:53 web-01 sshd[2211]: Failed password for invalid user admin from 203.0.113.7 port 52144 ssh2"},
		{"webshell.php-eval-post", shellPath, "PHP web shell: eval of request data", `<?php @eval($_POST["cmd"]); ?>`},
		{"vuln.kernel-eol", "", "Kernel 5.10.0-8 is past end of life", ""},
		{"webattack.sqli", "GET /index.php?id=1'--", "SQL injection attempt: ' OR 1=1; DROP TABLE events; --", `10.0.0.1 - - [14/Mar/2025:09:26:53 +0000] "GET /index.php?id=1%27%20OR%201=1-- HTTP/1.1" 200 512`},
		{"intel.known-bad-ip", "%_\\", "LIKE wildcards % _ and a backslash \\", "?"},
		{"", "", "", ""},
		{"a.b", "\x00", "NUL\x00inside", "\x00"},
		{"bad.utf8", "\xff\xfe", "invalid \xc3\x28 UTF-8", "\xed\xa0\x80"},
		{"unicode.titles", "Ünïcødé-ключ-鍵", "Ошибка входа 🔐 for 用户", "emoji 🚨 line"},
		{"long.key", strings.Repeat("k", 600), strings.Repeat("T", 520), strings.Repeat("L", 5000)},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}

	var seq int64
	f.Fuzz(func(t *testing.T, ruleID, dedupKey, title, line string) {
		ctx := t.Context()
		seq++
		clock.Advance(time.Millisecond)
		fd := finding.Finding{
			ID:       "fz-" + strconv.FormatInt(seq, 10),
			RuleID:   ruleID,
			Category: finding.Categories[len(title)%len(finding.Categories)],
			Severity: finding.Severity(len(line) % 5),
			Title:    title,
			Time:     clock.Now(), // strictly increasing: the latest finding's title is the event's
			DedupKey: dedupKey,
			Action:   "Review: " + line,
			MITRE:    []string{ruleID},
			Evidence: finding.Evidence{Lines: []string{line}, Source: dedupKey, Fields: map[string]string{title: line}},
		}
		res, err := s.IngestFindings(ctx, "h-fuzz", []finding.Finding{fd}, time.Minute)
		if err != nil {
			if has, herr := s.HasFinding(ctx, fd.ID); herr != nil || has {
				t.Fatalf("IngestFindings failed (%v) but HasFinding = %v, %v", err, has, herr)
			}
			if _, perr := s.FindingCount(ctx); perr != nil {
				t.Fatalf("store unusable after a failed ingest (%v): %v", err, perr)
			}
			return
		}
		if res.New+res.Aggregated != 1 || res.Duplicate != 0 {
			t.Fatalf("result %+v for one new finding", res)
		}
		var eventID string
		if err := s.queryRow(ctx, `SELECT event_id FROM finding_ids WHERE id = ?`, fd.ID).Scan(&eventID); err != nil {
			t.Fatalf("stored finding has no event: %v", err)
		}
		e, err := s.EventByID(ctx, eventID)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				t.Fatalf("finding recorded in event %s, which does not exist", eventID)
			}
			t.Fatalf("EventByID: %v", err)
		}
		if e.Title != title {
			t.Fatalf("title round trip: got %q, want %q", e.Title, title)
		}
		if e.Key != fd.Key() || e.HostID != "h-fuzz" || !e.LastSeen.Equal(fd.Time) {
			t.Fatalf("event key %q host %s last %v; want %q, h-fuzz, %v", e.Key, e.HostID, e.LastSeen, fd.Key(), fd.Time)
		}
	})
}
