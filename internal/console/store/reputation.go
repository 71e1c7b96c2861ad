package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// Reputation verdicts, from worst to best.
const (
	VerdictMalicious  = "malicious"
	VerdictSuspicious = "suspicious"
	VerdictClean      = "clean"
	VerdictUnknown    = "unknown"
)

// ValidVerdict reports whether v is a verdict a source may give.
func ValidVerdict(v string) bool {
	return v == VerdictMalicious || v == VerdictSuspicious || v == VerdictClean
}

// ReputationEntry is one source's opinion of one file.
type ReputationEntry struct {
	SHA256  string
	Source  string
	Verdict string
	Family  string
}

// HashVerdict is the aggregated opinion of every source about one file.
type HashVerdict struct {
	SHA256    string `json:"sha256"`
	Verdict   string `json:"verdict"`
	Family    string `json:"family,omitempty"`
	Sources   int    `json:"sources"`
	Malicious int    `json:"malicious"`
}

// ImportReputation stores entries (replacing a source's earlier opinion of the same file), in
// one transaction per call.
func (s *Store) ImportReputation(ctx context.Context, entries []ReputationEntry) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		now := ms(s.Now())
		const width = 5
		for lo := 0; lo < len(entries); lo += chunk / 2 {
			hi := min(lo+chunk/2, len(entries))
			args := make([]any, 0, width*(hi-lo))
			for _, e := range entries[lo:hi] {
				args = append(args, strings.ToLower(e.SHA256), e.Source, e.Verdict, e.Family, now)
			}
			_, err := tx.ExecContext(ctx, s.q(`INSERT INTO reputation(sha256, source, verdict, family, updated_at) VALUES `+
				placeholders(hi-lo, width)+` ON CONFLICT (sha256, source) DO UPDATE SET verdict = excluded.verdict,
				family = excluded.family, updated_at = excluded.updated_at`), args...)
			if err != nil {
				return fmt.Errorf("import reputation: %w", err)
			}
		}
		return nil
	})
}

// LookupHashes aggregates the sources' opinions of each hash: malicious when any source says
// so, else suspicious when any does, else clean when any does, else unknown. The family is the
// one most malicious sources name.
func (s *Store) LookupHashes(ctx context.Context, hashes []string) ([]HashVerdict, error) {
	out := make([]HashVerdict, len(hashes))
	idx := map[string][]int{}
	var keys []string
	for i, h := range hashes {
		h = strings.ToLower(h)
		out[i] = HashVerdict{SHA256: h, Verdict: VerdictUnknown}
		if _, ok := idx[h]; !ok {
			keys = append(keys, h)
		}
		idx[h] = append(idx[h], i)
	}
	families := map[string]map[string]int{}
	for lo := 0; lo < len(keys); lo += chunk {
		part := keys[lo:min(lo+chunk, len(keys))]
		in, args := s.inList(part)
		rows, err := s.query(ctx, `SELECT sha256, verdict, family FROM reputation WHERE sha256 `+in, args...)
		if err != nil {
			return nil, fmt.Errorf("look up hashes: %w", err)
		}
		for rows.Next() {
			var h, v, fam string
			if err := rows.Scan(&h, &v, &fam); err != nil {
				rows.Close()
				return nil, err
			}
			for _, i := range idx[h] {
				hv := &out[i]
				hv.Sources++
				if v == VerdictMalicious {
					hv.Malicious++
				}
				if rank(v) < rank(hv.Verdict) {
					hv.Verdict = v
				}
			}
			if v == VerdictMalicious && fam != "" {
				if families[h] == nil {
					families[h] = map[string]int{}
				}
				families[h][fam]++
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	for h, fams := range families {
		best, n := "", 0
		for f, c := range fams {
			if c > n || c == n && f < best {
				best, n = f, c
			}
		}
		for _, i := range idx[h] {
			out[i].Family = best
		}
	}
	return out, nil
}

func rank(v string) int {
	switch v {
	case VerdictMalicious:
		return 0
	case VerdictSuspicious:
		return 1
	case VerdictClean:
		return 2
	}
	return 3
}

// ReputationCount returns how many (hash, source) opinions are stored.
func (s *Store) ReputationCount(ctx context.Context) (int64, error) {
	var n int64
	err := s.queryRow(ctx, `SELECT COUNT(*) FROM reputation`).Scan(&n)
	return n, err
}
