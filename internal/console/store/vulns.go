package store

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// ErrInventoryGap is returned when an inventory diff does not follow the generation the console
// holds: the console then asks the agent for a full inventory.
var ErrInventoryGap = errors.New("inventory diff does not follow the stored generation")

// OSRelease is the host's os-release as its inventory reported it.
type OSRelease struct {
	ID        string `json:"id"`
	VersionID string `json:"version_id,omitempty"`
	Codename  string `json:"version_codename,omitempty"`
	Pretty    string `json:"pretty_name,omitempty"`
}

// HostInventory is the state of one host's package inventory.
type HostInventory struct {
	HostID     string    `json:"host_id"`
	Generation uint64    `json:"generation"`
	OS         OSRelease `json:"os"`
	Packages   int       `json:"packages"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// PackageKey is the stored key of a package within its host: a digest of finding.Package.Key,
// which holds NUL separators PostgreSQL text cannot.
func PackageKey(p finding.Package) string {
	h := sha256.Sum256([]byte(p.Key()))
	return hex.EncodeToString(h[:16])
}

// rowsPer keeps multi-row statements under both databases' parameter limits.
func rowsPer(width int) int { return 3000 / width }

// ReplaceInventory stores a host's full inventory at generation gen.
func (s *Store) ReplaceInventory(ctx context.Context, hostID string, gen uint64, osr OSRelease, pkgs []finding.Package) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM host_packages WHERE host_id = ?`), hostID); err != nil {
			return err
		}
		if err := s.insertPackages(ctx, tx, hostID, pkgs); err != nil {
			return err
		}
		return s.putInventoryHead(ctx, tx, hostID, gen, osr, len(pkgs))
	})
}

// ApplyInventoryDiff applies one diff. It returns ErrInventoryGap when gen does not follow the
// stored generation, or when the result does not hold total packages.
func (s *Store) ApplyInventoryDiff(ctx context.Context, hostID string, gen uint64, osr OSRelease, added, removed []finding.Package, total int) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		// Generations are stored as BIGINT: the bits of the uint64, read back the same way.
		var stored int64
		err := tx.QueryRowContext(ctx, s.q(`SELECT generation FROM host_inventory WHERE host_id = ?`), hostID).Scan(&stored)
		have := uint64(stored)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && have+1 != gen) {
			return fmt.Errorf("host %s holds generation %d, diff is %d: %w", hostID, have, gen, ErrInventoryGap)
		}
		if err != nil {
			return err
		}
		for lo := 0; lo < len(removed); lo += 500 {
			part := removed[lo:min(lo+500, len(removed))]
			args := []any{hostID}
			for _, p := range part {
				args = append(args, PackageKey(p))
			}
			if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM host_packages WHERE host_id = ? AND pkg_key IN (`+
				strings.TrimSuffix(strings.Repeat("?, ", len(part)), ", ")+`)`), args...); err != nil {
				return err
			}
		}
		if err := s.insertPackages(ctx, tx, hostID, added); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM host_packages WHERE host_id = ?`), hostID).Scan(&n); err != nil {
			return err
		}
		if n != total {
			return fmt.Errorf("host %s holds %d packages after the diff, the agent %d: %w", hostID, n, total, ErrInventoryGap)
		}
		return s.putInventoryHead(ctx, tx, hostID, gen, osr, n)
	})
}

func (s *Store) insertPackages(ctx context.Context, tx *sql.Tx, hostID string, pkgs []finding.Package) error {
	const width = 11
	per := rowsPer(width)
	for lo := 0; lo < len(pkgs); lo += per {
		part := pkgs[lo:min(lo+per, len(pkgs))]
		args := make([]any, 0, width*len(part))
		for _, p := range part {
			args = append(args, hostID, PackageKey(p), p.Ecosystem, p.Name, p.Version, p.SourceName, p.SourceVersion, p.Arch, p.Location, p.PURL, p.Extractor)
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO host_packages(host_id, pkg_key, ecosystem, name, version, source_name,
			source_version, arch, location, purl, extractor) VALUES `+placeholders(len(part), width)+
			` ON CONFLICT (host_id, pkg_key) DO NOTHING`), args...); err != nil {
			return fmt.Errorf("store packages: %w", err)
		}
	}
	return nil
}

func (s *Store) putInventoryHead(ctx context.Context, tx *sql.Tx, hostID string, gen uint64, osr OSRelease, n int) error {
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO host_inventory(host_id, generation, os_id, os_version, os_codename, os_pretty,
		package_count, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (host_id) DO UPDATE SET generation = excluded.generation,
		os_id = excluded.os_id, os_version = excluded.os_version, os_codename = excluded.os_codename, os_pretty = excluded.os_pretty,
		package_count = excluded.package_count, updated_at = excluded.updated_at`),
		hostID, int64(gen), osr.ID, osr.VersionID, osr.Codename, osr.Pretty, n, ms(s.Now()))
	return err
}

// Inventory returns a host's inventory state.
func (s *Store) Inventory(ctx context.Context, hostID string) (HostInventory, error) {
	var hi HostInventory
	var gen, at int64
	err := s.queryRow(ctx, `SELECT host_id, generation, os_id, os_version, os_codename, os_pretty, package_count, updated_at
		FROM host_inventory WHERE host_id = ?`, hostID).Scan(&hi.HostID, &gen, &hi.OS.ID, &hi.OS.VersionID, &hi.OS.Codename, &hi.OS.Pretty, &hi.Packages, &at)
	hi.Generation, hi.UpdatedAt = uint64(gen), fromMS(at)
	return hi, notFound(err, "inventory of host "+hostID)
}

// InventoryHosts lists the hosts that have an inventory, not revoked.
func (s *Store) InventoryHosts(ctx context.Context) ([]string, error) {
	rows, err := s.query(ctx, `SELECT i.host_id FROM host_inventory i JOIN hosts h ON h.id = i.host_id WHERE h.revoked_at = 0 ORDER BY i.host_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// PackageFilter selects a host's packages.
type PackageFilter struct {
	Name          string // substring of the name or source name
	Ecosystem     string // prefix, e.g. "Debian" or "PyPI"
	Limit, Offset int    // Limit 0: all
}

// HostPackages returns a host's packages, ordered by ecosystem and name, and how many match.
func (s *Store) HostPackages(ctx context.Context, hostID string, f PackageFilter) ([]finding.Package, int, error) {
	where := `host_id = ?`
	args := []any{hostID}
	if f.Name != "" {
		where += ` AND (name LIKE ? OR source_name LIKE ?)`
		like := "%" + likeEscape(f.Name) + "%"
		args = append(args, like, like)
	}
	if f.Ecosystem != "" {
		where += ` AND ecosystem LIKE ?`
		args = append(args, likeEscape(f.Ecosystem)+"%")
	}
	// Without a limit the rows are the count: a fleet rematch reads every host this way.
	total := -1
	if f.Limit > 0 || f.Offset > 0 {
		if err := s.queryRow(ctx, `SELECT COUNT(*) FROM host_packages WHERE `+where, args...).Scan(&total); err != nil {
			return nil, 0, err
		}
	}
	q := `SELECT ecosystem, name, version, source_name, source_version, arch, location, purl, extractor FROM host_packages WHERE ` +
		where + ` ORDER BY ecosystem, name, version, location`
	if f.Limit > 0 {
		q += ` LIMIT ? OFFSET ?` // bound like every other page of the store
		args = append(args, f.Limit, f.Offset)
	}
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []finding.Package
	for rows.Next() {
		var p finding.Package
		if err := rows.Scan(&p.Ecosystem, &p.Name, &p.Version, &p.SourceName, &p.SourceVersion, &p.Arch, &p.Location, &p.PURL, &p.Extractor); err != nil {
			return nil, 0, err
		}
		out = append(out, p)
	}
	if total < 0 {
		total = len(out)
	}
	return out, total, rows.Err()
}

// likeEscape makes s literal in a LIKE pattern using the default escape-less syntax: the
// wildcards are rare in package names, so they are simply dropped.
func likeEscape(s string) string {
	return strings.NewReplacer("%", "", "_", "").Replace(s)
}

// HostVuln is one advisory affecting one installed package on one host.
type HostVuln struct {
	HostID    string   `json:"host_id"`
	Hostname  string   `json:"hostname,omitempty"`
	Advisory  string   `json:"advisory"`
	Aliases   []string `json:"aliases,omitempty"`
	Summary   string   `json:"summary,omitempty"`
	Ecosystem string   `json:"ecosystem"`
	Package   string   `json:"package"`
	Installed string   `json:"installed"`
	Fixed     string   `json:"fixed,omitempty"`
	// FixAvailable is true when a fixed version is published (Fixed is set).
	FixAvailable bool      `json:"fix_available"`
	FixCommand   string    `json:"fix_command,omitempty"`
	Location     string    `json:"location,omitempty"`
	Severity     string    `json:"severity"`
	Score        float64   `json:"score,omitempty"`
	Emergency    string    `json:"emergency,omitempty"` // the emergency's name, e.g. "regreSSHion"
	FirstSeen    time.Time `json:"first_seen"`
	LastSeen     time.Time `json:"last_seen"`
	// Status is "open", or "accepted" while an acceptance for the advisory (this host or all
	// hosts) has not expired.
	Status     string      `json:"status"`
	Acceptance *Acceptance `json:"acceptance,omitempty"`

	pkgKey string
}

// NewHostVuln fills the stored key of a match's package.
func NewHostVuln(hostID string, p finding.Package) HostVuln {
	return HostVuln{HostID: hostID, Ecosystem: p.Ecosystem, Package: p.Name, Installed: p.Version, Location: p.Location, pkgKey: PackageKey(p)}
}

// ReplaceHostVulns makes vs the host's current vulnerabilities: new ones are inserted with
// first_seen now, changed ones updated, gone ones deleted; unchanged rows are not written, so a
// fleet rematch after a small data change writes little. It returns the new ones and how many
// were removed. (A vulnerability's last_seen, as read, is when the host last reported its
// inventory.)
func (s *Store) ReplaceHostVulns(ctx context.Context, hostID string, vs []HostVuln) (added []HostVuln, removed int, err error) {
	sets := []HostVulnSet{{HostID: hostID, Vulns: vs}}
	err = s.ReplaceFleetVulns(ctx, sets)
	return sets[0].Added, sets[0].Removed, err
}

// HostVulnSet is one host's current vulnerabilities, for ReplaceFleetVulns.
type HostVulnSet struct {
	HostID string
	Vulns  []HostVuln
	// Added is filled with the vulnerabilities that are new, Removed with how many were deleted.
	Added   []HostVuln
	Removed int
}

// ReplaceFleetVulns is ReplaceHostVulns for several hosts in one transaction: a fleet rematch
// commits once per batch instead of once per host, and on PostgreSQL writes the batch's rows in
// a few statements instead of a few per host.
func (s *Store) ReplaceFleetVulns(ctx context.Context, sets []HostVulnSet) error {
	return s.connTx(ctx, func(conn *sql.Conn, tx *sql.Tx) error {
		// A host named twice is replaced twice, in order, as separate calls would.
		seen := map[string]bool{}
		lo := 0
		for i := range sets {
			if seen[sets[i].HostID] {
				if err := s.replaceVulns(ctx, conn, tx, sets[lo:i]); err != nil {
					return err
				}
				lo, seen = i, map[string]bool{}
			}
			seen[sets[i].HostID] = true
		}
		return s.replaceVulns(ctx, conn, tx, sets[lo:])
	})
}

// connTx is tx on a connection held for the transaction, so that fn can reach the driver's
// connection (conn.Raw) inside the transaction, e.g. for PostgreSQL's COPY.
func (s *Store) connTx(ctx context.Context, fn func(*sql.Conn, *sql.Tx) error) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(conn, tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// vulnKey identifies a stored vulnerability.
type vulnKey struct{ host, advisory, pkgKey string }

// replaceVulns replaces the vulnerabilities of sets, whose hosts are distinct.
func (s *Store) replaceVulns(ctx context.Context, conn *sql.Conn, tx *sql.Tx, sets []HostVulnSet) error {
	if len(sets) == 0 {
		return nil
	}
	type old struct {
		fixed, severity, emergency, installed string
		score                                 float64
	}
	have := map[vulnKey]old{}
	// A host at a time: the primary key's prefix, whatever the planner thinks of a list of hosts.
	for i := range sets {
		rows, err := tx.QueryContext(ctx, s.q(`SELECT advisory, pkg_key, fixed, severity, score, emergency, installed FROM host_vulns
			WHERE host_id = ?`), sets[i].HostID)
		if err != nil {
			return err
		}
		for rows.Next() {
			k := vulnKey{host: sets[i].HostID}
			var o old
			if err := rows.Scan(&k.advisory, &k.pkgKey, &o.fixed, &o.severity, &o.score, &o.emergency, &o.installed); err != nil {
				rows.Close()
				return err
			}
			have[k] = o
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	var fresh, changed []HostVuln
	var gone []vulnKey
	keep := map[vulnKey]bool{}
	index := map[string]int{}
	for i := range sets {
		set := &sets[i]
		set.Added, set.Removed = nil, 0
		index[set.HostID] = i
		for _, v := range set.Vulns {
			v.HostID = set.HostID
			k := vulnKey{set.HostID, v.Advisory, v.pkgKey}
			if keep[k] {
				continue
			}
			keep[k] = true
			o, ok := have[k]
			switch {
			case !ok:
				set.Added = append(set.Added, v)
			case o.fixed != v.Fixed || o.severity != v.Severity || o.score != v.Score || o.emergency != v.Emergency || o.installed != v.Installed:
				changed = append(changed, v)
			}
		}
		fresh = append(fresh, set.Added...)
	}
	for k := range have {
		if !keep[k] {
			gone = append(gone, k)
			sets[index[k.host]].Removed++
		}
	}
	now := ms(s.Now())
	if s.postgres {
		return s.writeVulnsPostgres(ctx, conn, tx, now, fresh, changed, gone)
	}
	return s.writeVulnsSQLite(ctx, tx, now, fresh, changed, gone)
}

// writeVulnsSQLite writes a batch's changes with multi-row inserts and prepared single-row
// updates and deletes: SQLite runs in the process, so statements cost no round trip.
func (s *Store) writeVulnsSQLite(ctx context.Context, tx *sql.Tx, now int64, fresh, changed []HostVuln, gone []vulnKey) error {
	if len(changed) > 0 {
		st, err := tx.PrepareContext(ctx, `UPDATE host_vulns SET fixed = ?, fix_command = ?, severity = ?, score = ?, emergency = ?,
			installed = ?, aliases = ?, summary = ?, last_seen = ? WHERE host_id = ? AND advisory = ? AND pkg_key = ?`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, v := range changed {
			if _, err := st.ExecContext(ctx, v.Fixed, v.FixCommand, v.Severity, v.Score, v.Emergency, v.Installed,
				jsonText(nonNilStrings(v.Aliases)), v.Summary, now, v.HostID, v.Advisory, v.pkgKey); err != nil {
				return err
			}
		}
	}
	if len(gone) > 0 {
		st, err := tx.PrepareContext(ctx, `DELETE FROM host_vulns WHERE host_id = ? AND advisory = ? AND pkg_key = ?`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, k := range gone {
			if _, err := st.ExecContext(ctx, k.host, k.advisory, k.pkgKey); err != nil {
				return err
			}
		}
	}
	const width = 16
	per := rowsPer(width)
	for lo := 0; lo < len(fresh); lo += per {
		part := fresh[lo:min(lo+per, len(fresh))]
		args := make([]any, 0, width*len(part))
		for _, v := range part {
			args = append(args, v.HostID, v.Advisory, v.pkgKey, v.Ecosystem, v.Package, v.Installed, v.Fixed, v.FixCommand, v.Location,
				jsonText(nonNilStrings(v.Aliases)), v.Summary, v.Severity, v.Score, v.Emergency, now, now)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO host_vulns(host_id, advisory, pkg_key, ecosystem, package, installed, fixed,
			fix_command, location, aliases, summary, severity, score, emergency, first_seen, last_seen) VALUES `+placeholders(len(part), width), args...); err != nil {
			return fmt.Errorf("store host vulnerabilities: %w", err)
		}
	}
	return nil
}

// pgArrayRows is how many rows one array-parameter statement carries.
const pgArrayRows = 10000

// writeVulnsPostgres writes a batch's new rows with one COPY, and its changed and gone rows with
// one statement each (per pgArrayRows rows) whose columns are array parameters unnested by the
// server: every statement is a round trip, and a multi-row VALUES list is parsed and planned
// anew each time. COPY runs on the transaction's connection, so it commits or rolls back with
// the rest.
func (s *Store) writeVulnsPostgres(ctx context.Context, conn *sql.Conn, tx *sql.Tx, now int64, fresh, changed []HostVuln, gone []vulnKey) error {
	for lo := 0; lo < len(changed); lo += pgArrayRows {
		c := newVulnColumns(changed[lo:min(lo+pgArrayRows, len(changed))])
		if _, err := tx.ExecContext(ctx, `UPDATE host_vulns v SET fixed = u.fixed, fix_command = u.fix_command, severity = u.severity,
			score = u.score, emergency = u.emergency, installed = u.installed, aliases = u.aliases, summary = u.summary, last_seen = $1
			FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::float8[], $9::text[], $10::text[],
				$11::text[], $12::text[])
				AS u(host_id, advisory, pkg_key, fixed, fix_command, severity, score, emergency, installed, aliases, summary)
			WHERE v.host_id = u.host_id AND v.advisory = u.advisory AND v.pkg_key = u.pkg_key`,
			now, c.host, c.advisory, c.pkgKey, c.fixed, c.fixCommand, c.severity, c.score, c.emergency, c.installed, c.aliases, c.summary); err != nil {
			return fmt.Errorf("update host vulnerabilities: %w", err)
		}
	}
	for lo := 0; lo < len(gone); lo += pgArrayRows {
		part := gone[lo:min(lo+pgArrayRows, len(gone))]
		host, adv, key := make([]string, len(part)), make([]string, len(part)), make([]string, len(part))
		for i, k := range part {
			host[i], adv[i], key[i] = k.host, k.advisory, k.pkgKey
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM host_vulns v USING unnest($1::text[], $2::text[], $3::text[]) AS u(host_id, advisory, pkg_key)
			WHERE v.host_id = u.host_id AND v.advisory = u.advisory AND v.pkg_key = u.pkg_key`, host, adv, key); err != nil {
			return fmt.Errorf("delete host vulnerabilities: %w", err)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	err := conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("unexpected PostgreSQL driver connection %T", dc)
		}
		_, err := sc.Conn().CopyFrom(ctx, pgx.Identifier{"host_vulns"}, []string{"host_id", "advisory", "pkg_key", "ecosystem",
			"package", "installed", "fixed", "fix_command", "location", "aliases", "summary", "severity", "score", "emergency",
			"first_seen", "last_seen"}, &vulnRows{vs: fresh, now: now, i: -1})
		return err
	})
	if err != nil {
		return fmt.Errorf("store host vulnerabilities: %w", err)
	}
	return nil
}

// vulnRows feeds new host_vulns rows to COPY.
type vulnRows struct {
	vs  []HostVuln
	now int64
	i   int
	row [16]any
}

func (r *vulnRows) Next() bool { r.i++; return r.i < len(r.vs) }

func (r *vulnRows) Values() ([]any, error) {
	v := &r.vs[r.i]
	r.row = [16]any{v.HostID, v.Advisory, v.pkgKey, v.Ecosystem, v.Package, v.Installed, v.Fixed, v.FixCommand, v.Location,
		jsonText(nonNilStrings(v.Aliases)), v.Summary, v.Severity, v.Score, v.Emergency, r.now, r.now}
	return r.row[:], nil
}

func (r *vulnRows) Err() error { return nil }

// vulnColumns holds rows of host_vulns column by column, as PostgreSQL array parameters.
type vulnColumns struct {
	host, advisory, pkgKey, fixed, fixCommand, severity, emergency, installed, aliases, summary, ecosystem, pkg, location []string
	score                                                                                                                 []float64
}

func newVulnColumns(vs []HostVuln) vulnColumns {
	n := len(vs)
	c := vulnColumns{host: make([]string, n), advisory: make([]string, n), pkgKey: make([]string, n), fixed: make([]string, n),
		fixCommand: make([]string, n), severity: make([]string, n), emergency: make([]string, n), installed: make([]string, n),
		aliases: make([]string, n), summary: make([]string, n), ecosystem: make([]string, n), pkg: make([]string, n),
		location: make([]string, n), score: make([]float64, n)}
	for i, v := range vs {
		c.host[i], c.advisory[i], c.pkgKey[i], c.fixed[i], c.fixCommand[i] = v.HostID, v.Advisory, v.pkgKey, v.Fixed, v.FixCommand
		c.severity[i], c.emergency[i], c.installed[i], c.summary[i] = v.Severity, v.Emergency, v.Installed, v.Summary
		c.aliases[i], c.ecosystem[i], c.pkg[i], c.location[i], c.score[i] = jsonText(nonNilStrings(v.Aliases)), v.Ecosystem, v.Package, v.Location, v.Score
	}
	return c
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// VulnFilter selects host vulnerabilities.
type VulnFilter struct {
	HostID      string
	Advisory    string
	MinSeverity int  // 0 all; 1 low ... 4 critical (see SeverityRank)
	Fixable     bool // only those with a fixed version
	Emergency   bool // only emergency vulnerabilities
	// Status "open", "accepted" or "" for both.
	Status        string
	Limit, Offset int
}

// severityRankSQL orders severities in SQL as vuln.SeverityRank does in Go.
const severityRankSQL = `CASE v.severity WHEN 'critical' THEN 4 WHEN 'high' THEN 3 WHEN 'medium' THEN 2 WHEN 'low' THEN 1 ELSE 0 END`

// acceptedSQL is true when an unexpired acceptance covers the row.
const acceptedSQL = `EXISTS (SELECT 1 FROM vuln_acceptances a WHERE a.advisory = v.advisory AND (a.host_id = v.host_id OR a.host_id = '') AND a.until_at > ?)`

func (s *Store) vulnWhere(f VulnFilter) (string, []any) {
	where := []string{"h.revoked_at = 0"}
	var args []any
	if f.HostID != "" {
		where, args = append(where, "v.host_id = ?"), append(args, f.HostID)
	}
	if f.Advisory != "" {
		where, args = append(where, "v.advisory = ?"), append(args, f.Advisory)
	}
	if f.MinSeverity > 0 {
		where, args = append(where, severityRankSQL+" >= ?"), append(args, f.MinSeverity)
	}
	if f.Fixable {
		where = append(where, "v.fixed <> ''")
	}
	if f.Emergency {
		where = append(where, "v.emergency <> ''")
	}
	switch f.Status {
	case "open":
		where, args = append(where, "NOT "+acceptedSQL), append(args, ms(s.Now()))
	case "accepted":
		where, args = append(where, acceptedSQL), append(args, ms(s.Now()))
	}
	return strings.Join(where, " AND "), args
}

// HostVulns lists vulnerabilities matching f, most severe first, and how many match.
func (s *Store) HostVulns(ctx context.Context, f VulnFilter) ([]HostVuln, int, error) {
	where, args := s.vulnWhere(f)
	var total int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM host_vulns v JOIN hosts h ON h.id = v.host_id WHERE `+where, args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	q := `SELECT v.host_id, h.hostname, v.advisory, v.aliases, v.summary, v.ecosystem, v.package, v.installed, v.fixed, v.fix_command,
		v.location, v.severity, v.score, v.emergency, v.first_seen, v.last_seen, COALESCE(i.updated_at, 0) FROM host_vulns v JOIN hosts h ON h.id = v.host_id
		LEFT JOIN host_inventory i ON i.host_id = v.host_id WHERE ` + where + ` ORDER BY ` + severityRankSQL + ` DESC, v.score DESC, v.advisory, h.hostname, v.package`
	if f.Limit > 0 {
		q += ` LIMIT ? OFFSET ?` // bound like every other page of the store
		args = append(args, f.Limit, f.Offset)
	}
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []HostVuln
	for rows.Next() {
		var v HostVuln
		var aliases string
		var first, last, reported int64
		if err := rows.Scan(&v.HostID, &v.Hostname, &v.Advisory, &aliases, &v.Summary, &v.Ecosystem, &v.Package, &v.Installed, &v.Fixed,
			&v.FixCommand, &v.Location, &v.Severity, &v.Score, &v.Emergency, &first, &last, &reported); err != nil {
			return nil, 0, err
		}
		json.Unmarshal([]byte(aliases), &v.Aliases)
		v.FirstSeen, v.LastSeen = fromMS(first), fromMS(max(last, reported))
		v.FixAvailable = v.Fixed != ""
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	rows.Close()
	return out, total, s.attachAcceptances(ctx, out)
}

// attachAcceptances sets Status and Acceptance from the unexpired acceptances.
func (s *Store) attachAcceptances(ctx context.Context, vs []HostVuln) error {
	acc, err := s.Acceptances(ctx, false)
	if err != nil {
		return err
	}
	by := map[[2]string]*Acceptance{}
	for i := range acc {
		by[[2]string{acc[i].Advisory, acc[i].HostID}] = &acc[i]
	}
	for i := range vs {
		vs[i].Status = "open"
		a := by[[2]string{vs[i].Advisory, vs[i].HostID}]
		if a == nil {
			a = by[[2]string{vs[i].Advisory, ""}]
		}
		if a != nil {
			vs[i].Status, vs[i].Acceptance = "accepted", a
		}
	}
	return nil
}

// AdvisoryExposure is one advisory across the fleet.
type AdvisoryExposure struct {
	Advisory  string   `json:"advisory"`
	Aliases   []string `json:"aliases,omitempty"`
	Summary   string   `json:"summary,omitempty"`
	Severity  string   `json:"severity"`
	Score     float64  `json:"score,omitempty"`
	Emergency string   `json:"emergency,omitempty"`
	// Hosts exposed (open, not accepted), hosts where it is accepted, affected packages.
	Hosts         int      `json:"hosts"`
	AcceptedHosts int      `json:"accepted_hosts"`
	Packages      []string `json:"packages"`
	Fixable       bool     `json:"fixable"`
}

// VulnExposure groups vulnerabilities by advisory with exposure counts, most exposed and most
// severe first. Status in f is ignored: both counts are reported.
func (s *Store) VulnExposure(ctx context.Context, f VulnFilter) ([]AdvisoryExposure, int, error) {
	f.Status = ""
	where, args := s.vulnWhere(f)
	now := ms(s.Now())
	// Acceptances are resolved by joining the unexpired one of the row's host and the fleet-wide
	// one (each at most one row: vuln_acceptances_scope is unique), not per row by a subquery.
	q := `SELECT v.advisory, MAX(v.aliases), MAX(v.summary), MAX(` + severityRankSQL + `), MAX(v.score), MAX(v.emergency),
		COUNT(DISTINCT CASE WHEN ah.id IS NULL AND af.id IS NULL THEN v.host_id END),
		COUNT(DISTINCT CASE WHEN ah.id IS NOT NULL OR af.id IS NOT NULL THEN v.host_id END),
		MAX(CASE WHEN v.fixed <> '' THEN 1 ELSE 0 END)
		FROM host_vulns v JOIN hosts h ON h.id = v.host_id
		LEFT JOIN vuln_acceptances ah ON ah.advisory = v.advisory AND ah.host_id = v.host_id AND ah.until_at > ?
		LEFT JOIN vuln_acceptances af ON af.advisory = v.advisory AND af.host_id = '' AND af.until_at > ?
		WHERE ` + where + ` GROUP BY v.advisory`
	rows, err := s.query(ctx, q, append([]any{now, now}, args...)...)
	if err != nil {
		return nil, 0, err
	}
	var out []AdvisoryExposure
	for rows.Next() {
		var e AdvisoryExposure
		var aliases string
		var rank, fixable int
		if err := rows.Scan(&e.Advisory, &aliases, &e.Summary, &rank, &e.Score, &e.Emergency, &e.Hosts, &e.AcceptedHosts, &fixable); err != nil {
			rows.Close()
			return nil, 0, err
		}
		json.Unmarshal([]byte(aliases), &e.Aliases)
		e.Severity = [...]string{"unknown", "low", "medium", "high", "critical"}[min(max(rank, 0), 4)]
		e.Fixable = fixable == 1
		out = append(out, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	sortExposure(out)
	total := len(out)
	if f.Offset > 0 {
		out = out[min(f.Offset, len(out)):]
	}
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	// Package names for the page only, a query per 500 advisories.
	byAdv := make(map[string]*AdvisoryExposure, len(out))
	for i := range out {
		byAdv[out[i].Advisory] = &out[i]
	}
	for lo := 0; lo < len(out); lo += 500 {
		part := out[lo:min(lo+500, len(out))]
		pargs := make([]any, len(part))
		for i := range part {
			pargs[i] = part[i].Advisory
		}
		if err := s.advisoryPackages(ctx, byAdv, pargs); err != nil {
			return nil, 0, err
		}
	}
	return out, total, nil
}

// advisoryPackages appends the distinct package names of the advisories to their exposures.
func (s *Store) advisoryPackages(ctx context.Context, byAdv map[string]*AdvisoryExposure, advisories []any) error {
	rows, err := s.query(ctx, `SELECT DISTINCT v.advisory, v.package FROM host_vulns v JOIN hosts h ON h.id = v.host_id
		WHERE v.advisory IN (`+strings.TrimSuffix(strings.Repeat("?, ", len(advisories)), ", ")+`) AND h.revoked_at = 0
		ORDER BY v.advisory, v.package`, advisories...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var adv, p string
		if err := rows.Scan(&adv, &p); err != nil {
			return err
		}
		if e := byAdv[adv]; e != nil {
			e.Packages = append(e.Packages, p)
		}
	}
	return rows.Err()
}

// Acceptance is an operator's decision to live with an advisory on one host or all hosts until a
// time.
type Acceptance struct {
	ID        string    `json:"id"`
	Advisory  string    `json:"advisory"`
	HostID    string    `json:"host_id,omitempty"` // empty: all hosts
	Until     time.Time `json:"until"`
	CreatedBy string    `json:"created_by"`
	Comment   string    `json:"comment,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// AcceptVuln records an acceptance, replacing an earlier one of the same advisory and scope.
func (s *Store) AcceptVuln(ctx context.Context, a Acceptance) (Acceptance, error) {
	a.CreatedAt = s.Now()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM vuln_acceptances WHERE advisory = ? AND host_id = ?`), a.Advisory, a.HostID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO vuln_acceptances(id, advisory, host_id, until_at, created_by, comment, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`), a.ID, a.Advisory, a.HostID, ms(a.Until), a.CreatedBy, a.Comment, ms(a.CreatedAt))
		return err
	})
	return a, err
}

// DeleteAcceptance removes an acceptance by ID.
func (s *Store) DeleteAcceptance(ctx context.Context, id string) (Acceptance, error) {
	var a Acceptance
	var until, created int64
	err := s.queryRow(ctx, `SELECT id, advisory, host_id, until_at, created_by, comment, created_at FROM vuln_acceptances WHERE id = ?`, id).
		Scan(&a.ID, &a.Advisory, &a.HostID, &until, &a.CreatedBy, &a.Comment, &created)
	if err != nil {
		return a, notFound(err, "acceptance "+id)
	}
	a.Until, a.CreatedAt = fromMS(until), fromMS(created)
	_, err = s.exec(ctx, `DELETE FROM vuln_acceptances WHERE id = ?`, id)
	return a, err
}

// Acceptances lists acceptances; expired ones only when withExpired.
func (s *Store) Acceptances(ctx context.Context, withExpired bool) ([]Acceptance, error) {
	q := `SELECT id, advisory, host_id, until_at, created_by, comment, created_at FROM vuln_acceptances`
	var args []any
	if !withExpired {
		q += ` WHERE until_at > ?`
		args = append(args, ms(s.Now()))
	}
	rows, err := s.query(ctx, q+` ORDER BY advisory, host_id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Acceptance
	for rows.Next() {
		var a Acceptance
		var until, created int64
		if err := rows.Scan(&a.ID, &a.Advisory, &a.HostID, &until, &a.CreatedBy, &a.Comment, &created); err != nil {
			return nil, err
		}
		a.Until, a.CreatedAt = fromMS(until), fromMS(created)
		out = append(out, a)
	}
	return out, rows.Err()
}

// VulnArchive is one imported vulnerability data archive.
type VulnArchive struct {
	Name       string         `json:"name"`
	SHA256     string         `json:"sha256"`
	Size       int64          `json:"size"`
	Records    map[string]int `json:"records"`
	Source     string         `json:"source"`
	ImportedBy string         `json:"imported_by"`
	ImportedAt time.Time      `json:"imported_at"`
}

// PutVulnArchive records an import, replacing the archive of the same name.
func (s *Store) PutVulnArchive(ctx context.Context, a VulnArchive) error {
	_, err := s.exec(ctx, `INSERT INTO vulndb_archives(name, sha256, size, records, source, imported_by, imported_at) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size, records = excluded.records, source = excluded.source,
		imported_by = excluded.imported_by, imported_at = excluded.imported_at`,
		a.Name, a.SHA256, a.Size, jsonText(a.Records), a.Source, a.ImportedBy, ms(a.ImportedAt))
	return err
}

// VulnArchives lists the imported archives by name.
func (s *Store) VulnArchives(ctx context.Context) ([]VulnArchive, error) {
	rows, err := s.query(ctx, `SELECT name, sha256, size, records, source, imported_by, imported_at FROM vulndb_archives ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []VulnArchive
	for rows.Next() {
		var a VulnArchive
		var recs string
		var at int64
		if err := rows.Scan(&a.Name, &a.SHA256, &a.Size, &recs, &a.Source, &a.ImportedBy, &at); err != nil {
			return nil, err
		}
		json.Unmarshal([]byte(recs), &a.Records)
		a.ImportedAt = fromMS(at)
		out = append(out, a)
	}
	return out, rows.Err()
}

var severityRank = map[string]int{"critical": 4, "high": 3, "medium": 2, "low": 1}

// sortExposure orders emergencies first, then by severity, exposed hosts and score.
func sortExposure(es []AdvisoryExposure) {
	slices.SortFunc(es, func(a, b AdvisoryExposure) int {
		if c := boolCmp(b.Emergency != "", a.Emergency != ""); c != 0 {
			return c
		}
		if c := cmp.Compare(severityRank[b.Severity], severityRank[a.Severity]); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Hosts, a.Hosts); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return strings.Compare(a.Advisory, b.Advisory)
	})
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
