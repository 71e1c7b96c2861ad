// Package vulndb keeps the console's vulnerability data and the vulnerabilities of every host:
// it stores imported OSV archives in the data directory (so a restart reloads them), builds the
// match index of internal/detect/vuln from them, fetches configured archives on a schedule, and
// rematches hosts from their stored inventories — one host when its inventory changes, every
// host when the data changes. Hosts are never rescanned for this.
//
// Matching is the engine's; this package is the I/O around it.
package vulndb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/detect/vuln"
	"github.com/palisade-cwpp/palisade/internal/finding"
)

// Config tunes the manager. Zero values mean the defaults.
type Config struct {
	// Dir holds the imported archives; the console uses DATA_DIR/vulndb.
	Dir string
	// Sources are archives fetched on schedule: https:// URLs (osv.dev publishes
	// https://osv-vulnerabilities.storage.googleapis.com/<ecosystem>/all.zip) or local files.
	Sources []string
	// FetchInterval between fetches of Sources; default 24h.
	FetchInterval time.Duration
	// MaxArchiveBytes bounds one archive; default 4 GiB.
	MaxArchiveBytes int64
	// Client fetches URLs; default a client with a 10-minute timeout.
	Client *http.Client
}

// Manager owns the vulnerability index and keeps host vulnerabilities current.
type Manager struct {
	cfg       Config
	store     *store.Store
	log       *slog.Logger
	emergency *vuln.EmergencyList

	index    atomic.Pointer[vuln.Index]
	importMu sync.Mutex // one import or index rebuild at a time

	mu       sync.Mutex
	pending  map[string]bool // hosts to rematch
	all      bool            // rematch every host
	wake     chan struct{}
	lastFull RematchStats
}

// RematchStats describes the latest fleet rematch.
type RematchStats struct {
	Hosts    int           `json:"hosts"`
	Matches  int           `json:"matches"`
	Duration time.Duration `json:"duration_ns"`
	At       time.Time     `json:"at,omitzero"`
}

// Open loads the archives in cfg.Dir.
func Open(cfg Config, st *store.Store, log *slog.Logger) (*Manager, error) {
	if cfg.FetchInterval <= 0 {
		cfg.FetchInterval = 24 * time.Hour
	}
	if cfg.MaxArchiveBytes <= 0 {
		cfg.MaxArchiveBytes = 4 << 30
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Minute}
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("vulnerability data directory: %w", err)
	}
	m := &Manager{cfg: cfg, store: st, log: log, emergency: vuln.BuiltinEmergency(), pending: map[string]bool{}, wake: make(chan struct{}, 1)}
	idx, err := m.build()
	if err != nil {
		return nil, err
	}
	m.index.Store(idx)
	return m, nil
}

// Index is the current match index.
func (m *Manager) Index() *vuln.Index { return m.index.Load() }

// Emergencies is the curated emergency list.
func (m *Manager) Emergencies() []*vuln.Emergency { return m.emergency.All() }

// build loads every archive of the directory into a fresh index.
func (m *Manager) build() (*vuln.Index, error) {
	b := vuln.NewBuilder(m.emergency)
	files, err := filepath.Glob(filepath.Join(m.cfg.Dir, "*.zip"))
	if err != nil {
		return nil, err
	}
	slices.Sort(files)
	for _, f := range files {
		if err := loadFile(b, f); err != nil {
			m.log.Error("vulnerability archive unusable; skipped", "file", f, "err", err)
		}
	}
	return b.Build(), nil
}

func loadFile(b *vuln.Builder, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	_, err = b.LoadArchive(f, st.Size())
	return err
}

// ImportResult reports one import.
type ImportResult struct {
	Name    string         `json:"name"`
	SHA256  string         `json:"sha256"`
	Size    int64          `json:"size"`
	Records map[string]int `json:"records"`
	Skipped int            `json:"skipped"`
	// Unchanged is true when the same archive was imported before; nothing was rebuilt.
	Unchanged bool `json:"unchanged,omitempty"`
	// Advisories in the index after the import.
	Advisories int `json:"advisories"`
}

// Import reads an OSV archive (a zip of OSV JSON records, such as osv.dev's all.zip), keeps it
// in the data directory under a name derived from its ecosystems (so importing Debian again
// replaces the previous Debian archive), rebuilds the index and schedules a rematch of every
// host.
func (m *Manager) Import(ctx context.Context, r io.Reader, source, by string) (ImportResult, error) {
	m.importMu.Lock()
	defer m.importMu.Unlock()
	tmp, err := os.CreateTemp(m.cfg.Dir, "import-*.tmp")
	if err != nil {
		return ImportResult{}, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, m.cfg.MaxArchiveBytes+1))
	if err != nil {
		return ImportResult{}, fmt.Errorf("read archive: %w", err)
	}
	if n > m.cfg.MaxArchiveBytes {
		return ImportResult{}, fmt.Errorf("archive larger than %d bytes", m.cfg.MaxArchiveBytes)
	}
	res := ImportResult{SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}
	probe := vuln.NewBuilder(nil)
	st, err := probe.LoadArchive(tmp, n)
	if err != nil {
		return res, err
	}
	res.Records, res.Skipped = st.Records, st.Skipped
	if len(st.Records) == 0 {
		return res, errors.New("the archive holds no usable OSV records")
	}
	res.Name = archiveName(st.Records)
	final := filepath.Join(m.cfg.Dir, res.Name)
	if old, err := fileSHA256(final); err == nil && old == res.SHA256 {
		res.Unchanged, res.Advisories = true, m.Index().Len()
		return res, nil
	}
	if err := tmp.Sync(); err != nil {
		return res, err
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return res, err
	}
	idx, err := m.build()
	if err != nil {
		return res, err
	}
	m.index.Store(idx)
	res.Advisories = idx.Len()
	if err := m.store.PutVulnArchive(ctx, store.VulnArchive{Name: res.Name, SHA256: res.SHA256, Size: n, Records: res.Records,
		Source: source, ImportedBy: by, ImportedAt: m.store.Now()}); err != nil {
		return res, err
	}
	m.log.Info("vulnerability data imported", "archive", res.Name, "records", res.Records, "advisories", res.Advisories, "source", source)
	m.RematchAll()
	return res, nil
}

// archiveName names an archive by its ecosystems: "Debian.zip", "Alpine+Ubuntu.zip".
func archiveName(records map[string]int) string {
	var fams []string
	for f := range records {
		fams = append(fams, f)
	}
	slices.Sort(fams)
	name := strings.Join(fams, "+")
	if len(fams) > 4 {
		name = strings.Join(fams[:4], "+") + fmt.Sprintf("+%d-more", len(fams)-4)
	}
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.' {
			return r
		}
		return '_'
	}, name)
	return clean + ".zip"
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// HostChanged schedules a rematch of one host.
func (m *Manager) HostChanged(hostID string) {
	m.mu.Lock()
	m.pending[hostID] = true
	m.mu.Unlock()
	wake(m.wake)
}

// RematchAll schedules a rematch of every host.
func (m *Manager) RematchAll() {
	m.mu.Lock()
	m.all = true
	m.mu.Unlock()
	wake(m.wake)
}

func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Run rematches hosts as they are scheduled and fetches the configured sources, until ctx ends.
// It starts with a fleet rematch when data is loaded: a rematch interrupted by a restart, or an
// emergency list changed by an upgrade, is then caught up.
func (m *Manager) Run(ctx context.Context) {
	if m.Index().Len() > 0 {
		m.RematchAll()
	}
	fetch := time.NewTimer(0)
	if len(m.cfg.Sources) == 0 {
		fetch.Stop()
	}
	defer fetch.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-fetch.C:
			m.fetchAll(ctx)
			fetch.Reset(m.cfg.FetchInterval)
		case <-m.wake:
			m.drain(ctx)
		}
	}
}

func (m *Manager) drain(ctx context.Context) {
	m.mu.Lock()
	all, hosts := m.all, m.pending
	m.all, m.pending = false, map[string]bool{}
	m.mu.Unlock()
	if all {
		if st, err := m.RematchFleet(ctx); err != nil && ctx.Err() == nil {
			m.log.Error("fleet rematch", "err", err)
		} else if err == nil {
			m.log.Info("fleet rematched", "hosts", st.Hosts, "matches", st.Matches, "took", st.Duration.Round(time.Millisecond))
		}
		return
	}
	for id := range hosts {
		if _, err := m.RematchHost(ctx, id); err != nil && ctx.Err() == nil {
			m.log.Error("rematch host", "host", id, "err", err)
		}
	}
}

// RematchHost matches one host's stored inventory against the current index and stores the
// result. It returns the number of matches.
func (m *Manager) RematchHost(ctx context.Context, hostID string) (int, error) {
	return m.rematch(ctx, m.Index().NewMatcher(), hostID)
}

func (m *Manager) rematch(ctx context.Context, matcher *vuln.Matcher, hostID string) (int, error) {
	pkgs, _, err := m.store.HostPackages(ctx, hostID, store.PackageFilter{})
	if err != nil {
		return 0, err
	}
	vs := toHostVulns(hostID, matcher.MatchPackages(pkgs))
	added, _, err := m.store.ReplaceHostVulns(ctx, hostID, vs)
	if err != nil {
		return 0, err
	}
	return len(vs), m.raiseEmergencies(ctx, hostID, added)
}

// raiseEmergencies opens an event for each newly found emergency vulnerability.
func (m *Manager) raiseEmergencies(ctx context.Context, hostID string, added []store.HostVuln) error {
	var fs []finding.Finding
	for _, v := range added {
		if v.Emergency != "" {
			fs = append(fs, emergencyFinding(v, m.store.Now()))
		}
	}
	if len(fs) == 0 {
		return nil
	}
	if _, err := m.store.IngestFindings(ctx, hostID, fs, 24*time.Hour); err != nil {
		return fmt.Errorf("emergency events: %w", err)
	}
	return nil
}

// emergencyFinding raises a newly found emergency vulnerability in the event stream, one event
// per host and advisory.
func emergencyFinding(v store.HostVuln, now time.Time) finding.Finding {
	cve := ""
	for _, a := range append([]string{v.Advisory}, v.Aliases...) {
		if i := strings.Index(a, "CVE-"); i >= 0 {
			cve = a[i:]
			break
		}
	}
	action := "No fixed version is published yet: apply the vendor's mitigation and watch for an update."
	if v.FixCommand != "" {
		action = "Upgrade " + v.Package + " to " + v.Fixed + " or later: " + v.FixCommand
	}
	title := fmt.Sprintf("Emergency vulnerability %s (%s): %s %s", v.Emergency, v.Advisory, v.Package, v.Installed)
	return finding.Finding{
		ID: finding.NewID(), RuleID: "vuln.emergency", Category: finding.CategoryVuln, Severity: finding.SeverityCritical,
		Title: clipTitle(title), Host: v.HostID, Time: now, DedupKey: v.Advisory, Action: action,
		Evidence: finding.Evidence{Path: v.Location, Fields: map[string]string{
			"advisory": v.Advisory, "cve": cve, "emergency": v.Emergency, "package": v.Package, "ecosystem": v.Ecosystem,
			"installed": v.Installed, "fixed": v.Fixed}},
	}
}

func clipTitle(s string) string {
	if len(s) > finding.MaxTitle {
		return s[:finding.MaxTitle]
	}
	return s
}

// fleetBatch is how many hosts a fleet rematch stores per transaction.
const fleetBatch = 25

// RematchFleet rematches every host with an inventory, storing fleetBatch hosts per
// transaction. The next batch is matched while the current one is written, so the database's
// work and the matching overlap; batches are still stored one at a time, in order.
func (m *Manager) RematchFleet(ctx context.Context) (RematchStats, error) {
	start := time.Now()
	hosts, err := m.store.InventoryHosts(ctx)
	if err != nil {
		return RematchStats{}, err
	}
	st := RematchStats{Hosts: len(hosts)}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	matched := make(chan []store.HostVulnSet, 1)
	var matchErr error
	matches := 0
	go func() {
		defer close(matched)
		matcher := m.Index().NewMatcher()
		for lo := 0; lo < len(hosts); lo += fleetBatch {
			sets := make([]store.HostVulnSet, 0, fleetBatch)
			for _, h := range hosts[lo:min(lo+fleetBatch, len(hosts))] {
				pkgs, _, err := m.store.HostPackages(ctx, h, store.PackageFilter{})
				if err != nil {
					matchErr = fmt.Errorf("host %s: %w", h, err)
					return
				}
				vs := toHostVulns(h, matcher.MatchPackages(pkgs))
				matches += len(vs)
				sets = append(sets, store.HostVulnSet{HostID: h, Vulns: vs})
			}
			select {
			case matched <- sets:
			case <-ctx.Done():
				return
			}
		}
	}()
	// stop ends the matching and waits for it, so that matchErr and matches can be read.
	stop := func() {
		cancel()
		for range matched {
		}
	}
	for sets := range matched {
		if err := m.store.ReplaceFleetVulns(ctx, sets); err != nil {
			stop()
			return st, err
		}
		for _, set := range sets {
			if err := m.raiseEmergencies(ctx, set.HostID, set.Added); err != nil {
				stop()
				return st, err
			}
		}
	}
	if matchErr != nil {
		return st, matchErr
	}
	if err := ctx.Err(); err != nil { // the matching stopped early
		return st, err
	}
	st.Matches = matches
	st.Duration, st.At = time.Since(start), time.Now().UTC()
	m.mu.Lock()
	m.lastFull = st
	m.mu.Unlock()
	return st, nil
}

func toHostVulns(hostID string, ms []vuln.Match) []store.HostVuln {
	out := make([]store.HostVuln, 0, len(ms))
	for _, mt := range ms {
		v := store.NewHostVuln(hostID, *mt.Package)
		v.Advisory, v.Aliases, v.Summary = mt.Advisory.ID, mt.Advisory.Aliases, mt.Advisory.Summary
		v.Severity, v.Score, v.Fixed, v.FixCommand = mt.Severity, mt.Advisory.Score, mt.Fixed, mt.FixCommand
		if mt.Advisory.Emergency != nil {
			v.Emergency = mt.Advisory.Emergency.Name
		}
		out = append(out, v)
	}
	return out
}

// fetchAll imports every configured source; one failing source does not stop the others.
func (m *Manager) fetchAll(ctx context.Context) {
	for _, src := range m.cfg.Sources {
		if err := m.fetch(ctx, src); err != nil && ctx.Err() == nil {
			m.log.Error("fetch vulnerability data", "source", src, "err", err)
		}
	}
}

func (m *Manager) fetch(ctx context.Context, src string) error {
	var body io.ReadCloser
	if strings.HasPrefix(src, "https://") || strings.HasPrefix(src, "http://") {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
		if err != nil {
			return err
		}
		resp, err := m.cfg.Client.Do(req)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return fmt.Errorf("HTTP %s", resp.Status)
		}
		body = resp.Body
	} else {
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		body = f
	}
	defer body.Close()
	res, err := m.Import(ctx, body, src, "schedule")
	if err == nil && res.Unchanged {
		m.log.Info("vulnerability data unchanged", "source", src)
	}
	return err
}

// Status is what GET /api/v1/vulndb shows.
type Status struct {
	Archives    []store.VulnArchive `json:"archives"`
	Records     map[string]int      `json:"records"`
	Advisories  int                 `json:"advisories"`
	Sources     []string            `json:"sources,omitempty"`
	LastRematch RematchStats        `json:"last_rematch"`
	Emergencies []*vuln.Emergency   `json:"emergencies"`
}

// Status reports the data loaded.
func (m *Manager) Status(ctx context.Context) (Status, error) {
	arch, err := m.store.VulnArchives(ctx)
	if err != nil {
		return Status{}, err
	}
	idx := m.Index()
	m.mu.Lock()
	last := m.lastFull
	m.mu.Unlock()
	if arch == nil {
		arch = []store.VulnArchive{}
	}
	return Status{Archives: arch, Records: idx.Stats().Records, Advisories: idx.Len(), Sources: m.cfg.Sources, LastRematch: last,
		Emergencies: m.emergency.All()}, nil
}

// Advisory returns an advisory of the current index.
func (m *Manager) Advisory(id string) (*vuln.Advisory, bool) { return m.Index().Advisory(id) }
