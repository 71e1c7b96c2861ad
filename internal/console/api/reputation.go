package api

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"

	"github.com/palisade-cwpp/palisade/internal/console/store"
)

// maxImportBytes bounds one reputation import (about 20 million lines).
const maxImportBytes = 2 << 30

// ImportResult reports a reputation import.
type ImportResult struct {
	Source   string   `json:"source"`
	Imported int      `json:"imported"`
	Skipped  int      `json:"skipped"`
	Errors   []string `json:"errors,omitempty"` // the first bad lines, with their numbers
}

// importReputation reads "sha256,verdict[,family]" lines (CSV, # comments) for one source.
func (s *Server) importReputation(w http.ResponseWriter, r *http.Request) {
	source := r.URL.Query().Get("source")
	if !validName(source) {
		writeError(w, http.StatusBadRequest, "query parameter source: 1-64 letters, digits, '-', '_' or '.'")
		return
	}
	res := ImportResult{Source: source}
	sc := bufio.NewScanner(http.MaxBytesReader(w, r.Body, maxImportBytes))
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	batch := make([]store.ReputationEntry, 0, 10000)
	flush := func() bool {
		if err := s.store.ImportReputation(r.Context(), batch); err != nil {
			s.storeError(w, err)
			return false
		}
		res.Imported += len(batch)
		batch = batch[:0]
		return true
	}
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Split(line, ",")
		e := store.ReputationEntry{Source: source}
		if len(f) >= 2 {
			e.SHA256, e.Verdict = strings.ToLower(strings.TrimSpace(f[0])), strings.ToLower(strings.TrimSpace(f[1]))
		}
		if len(f) >= 3 {
			e.Family = strings.TrimSpace(f[2])
		}
		switch {
		case len(f) < 2 || len(f) > 3:
			res.skip(n, "want sha256,verdict[,family]")
		case !isHex64(e.SHA256):
			res.skip(n, "not a SHA-256")
		case !store.ValidVerdict(e.Verdict):
			res.skip(n, "verdict must be malicious, suspicious or clean")
		case len(e.Family) > 128:
			res.skip(n, "family longer than 128 bytes")
		default:
			batch = append(batch, e)
			if len(batch) == cap(batch) && !flush() {
				return
			}
		}
	}
	if err := sc.Err(); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("read body after %d imported: %v", res.Imported, err))
		return
	}
	if !flush() {
		return
	}
	s.audit(r, "reputation.import", source, fmt.Sprintf("imported=%d skipped=%d", res.Imported, res.Skipped))
	writeJSON(w, http.StatusOK, res)
}

func (r *ImportResult) skip(line int, why string) {
	r.Skipped++
	if len(r.Errors) < 20 {
		r.Errors = append(r.Errors, fmt.Sprintf("line %d: %s", line, why))
	}
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (s *Server) lookupReputation(w http.ResponseWriter, r *http.Request) {
	h := strings.ToLower(r.PathValue("sha256"))
	if !isHex64(h) {
		writeError(w, http.StatusBadRequest, "want a SHA-256 in hex")
		return
	}
	vs, err := s.store.LookupHashes(r.Context(), []string{h})
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, vs[0])
}
