package agent

import (
	"fmt"
	"sync"
	"time"

	"github.com/palisade-cwpp/palisade/internal/detect/malware"
	"github.com/palisade-cwpp/palisade/internal/finding"
	pb "github.com/palisade-cwpp/palisade/proto/palisade/v1"
)

// Reputation cache and queue bounds.
const (
	repCacheMax     = 100_000
	repPendingMax   = 20_000
	repBatch        = 1000
	repCleanTTL     = 24 * time.Hour
	repMaliciousTTL = 7 * 24 * time.Hour
	repUnknownTTL   = time.Hour
)

// reputation asks the console about the hashes of files the local signatures found clean:
// only hashes leave the host. Verdicts are cached with a TTL; while the console is away the
// questions wait (bounded) and local scanning goes on.
type reputation struct {
	mu      sync.Mutex
	cache   map[string]repEntry
	pending map[string][]malware.Result // hash -> files waiting for its verdict
	asked   map[string]bool             // sent, no answer yet
	nextID  uint64
	ready   chan struct{}
}

type repEntry struct {
	verdict, family string
	sources, bad    uint32
	expires         time.Time
}

func newReputation() *reputation {
	return &reputation{cache: map[string]repEntry{}, pending: map[string][]malware.Result{}, asked: map[string]bool{}, ready: make(chan struct{}, 1)}
}

// check queues a clean file's hash, unless its verdict is cached; it returns a cached bad
// verdict at once.
func (r *reputation) check(res malware.Result, now time.Time) (repEntry, bool) {
	if res.SHA256 == "" || res.Size == 0 {
		return repEntry{}, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.cache[res.SHA256]; ok && now.Before(e.expires) {
		return e, e.verdict == "malicious" || e.verdict == "suspicious"
	}
	if files, ok := r.pending[res.SHA256]; ok {
		if len(files) < 16 {
			r.pending[res.SHA256] = append(files, res)
		}
		return repEntry{}, false
	}
	if len(r.pending) >= repPendingMax {
		return repEntry{}, false
	}
	r.pending[res.SHA256] = []malware.Result{res}
	select {
	case r.ready <- struct{}{}:
	default:
	}
	return repEntry{}, false
}

// query takes up to repBatch hashes not yet asked; nil when there are none.
func (r *reputation) query() *pb.HashQuery {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := &pb.HashQuery{}
	for h := range r.pending {
		if len(q.Sha256) == repBatch {
			break
		}
		if !r.asked[h] {
			r.asked[h] = true
			q.Sha256 = append(q.Sha256, h)
		}
	}
	if len(q.Sha256) == 0 {
		return nil
	}
	r.nextID++
	q.Id = r.nextID
	return q
}

// reconnected makes unanswered questions go out again on the new stream.
func (r *reputation) reconnected() {
	r.mu.Lock()
	clear(r.asked)
	n := len(r.pending)
	r.mu.Unlock()
	if n > 0 {
		select {
		case r.ready <- struct{}{}:
		default:
		}
	}
}

// answer caches verdicts and returns the files whose hash the console calls bad.
func (r *reputation) answer(v *pb.HashVerdicts, now time.Time) []finding.Finding {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []finding.Finding
	for _, hv := range v.GetVerdicts() {
		h := hv.GetSha256()
		files, ok := r.pending[h]
		if !ok {
			continue
		}
		delete(r.pending, h)
		delete(r.asked, h)
		e := repEntry{verdict: hv.GetVerdict(), family: hv.GetFamily(), sources: hv.GetSources(), bad: hv.GetMalicious()}
		switch e.verdict {
		case "malicious", "suspicious":
			e.expires = now.Add(repMaliciousTTL)
		case "clean":
			e.expires = now.Add(repCleanTTL)
		default:
			e.expires = now.Add(repUnknownTTL)
		}
		if len(r.cache) >= repCacheMax {
			clear(r.cache) // simple bound: a full cache starts over
		}
		r.cache[h] = e
		for _, f := range files {
			if rf, ok := reputationFinding(f, e, now); ok {
				out = append(out, rf)
			}
		}
	}
	return out
}

// reputationFinding reports a file the console's reputation store calls bad.
func reputationFinding(res malware.Result, e repEntry, now time.Time) (finding.Finding, bool) {
	sev := finding.SeverityHigh
	switch e.verdict {
	case "malicious":
	case "suspicious":
		sev = finding.SeverityMedium
	default:
		return finding.Finding{}, false
	}
	name := e.family
	if name == "" {
		name = e.verdict + " file"
	}
	path := res.Path
	if len(path) > 300 {
		path = "…" + path[len(path)-299:]
	}
	return finding.Finding{
		RuleID: "malware.reputation", Category: finding.CategoryMalware, Severity: sev, Time: now,
		Title:    fmt.Sprintf("%s: %s by cloud reputation (%d of %d sources)", path, name, e.bad, e.sources),
		DedupKey: res.Path + "|" + res.SHA256,
		Action:   "Quarantine the file and look for how it arrived.",
		MITRE:    []string{"T1204.002", "T1105"},
		Evidence: finding.Evidence{Path: res.Path, Hashes: map[string]string{"md5": res.MD5, "sha1": res.SHA1, "sha256": res.SHA256},
			Fields: map[string]string{"engine": "reputation", "verdict": e.verdict, "family": e.family,
				"sources": fmt.Sprint(e.sources), "malicious_sources": fmt.Sprint(e.bad), "size": fmt.Sprint(res.Size)}},
	}, true
}
