package store

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations are applied in order, each once, in its own transaction. Never edit a released
// migration: add a new one. Types are chosen to mean the same on SQLite and PostgreSQL. An empty
// slot is reserved for a migration being written on another branch: it is skipped and not
// recorded, and because migrate applies every version it has not recorded (not only those above
// the highest), the reserved migration still runs once it lands.
var migrations = []string{
	1: `
CREATE TABLE users (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	role TEXT NOT NULL,
	password_hash TEXT NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE TABLE sessions (
	token_hash TEXT PRIMARY KEY,
	user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	csrf TEXT NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE TABLE api_tokens (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL,
	token_hash TEXT NOT NULL UNIQUE,
	user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	last_used_at BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE enroll_tokens (
	id TEXT PRIMARY KEY,
	token_hash TEXT NOT NULL UNIQUE,
	host_group TEXT NOT NULL,
	created_by TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	used_at BIGINT NOT NULL DEFAULT 0,
	used_by TEXT NOT NULL DEFAULT ''
);
CREATE TABLE hosts (
	id TEXT PRIMARY KEY,
	hostname TEXT NOT NULL,
	host_group TEXT NOT NULL,
	cert_serial TEXT NOT NULL,
	enrolled_at BIGINT NOT NULL,
	last_seen BIGINT NOT NULL DEFAULT 0,
	revoked_at BIGINT NOT NULL DEFAULT 0,
	facts TEXT NOT NULL DEFAULT '{}',
	status TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE events (
	id TEXT PRIMARY KEY,
	host_id TEXT NOT NULL REFERENCES hosts(id),
	agg_key TEXT NOT NULL,
	rule_id TEXT NOT NULL,
	category TEXT NOT NULL,
	severity INTEGER NOT NULL,
	title TEXT NOT NULL,
	action TEXT NOT NULL,
	mitre TEXT NOT NULL,
	evidence TEXT NOT NULL,
	count BIGINT NOT NULL,
	first_seen BIGINT NOT NULL,
	last_seen BIGINT NOT NULL,
	status TEXT NOT NULL,
	handled_by TEXT NOT NULL DEFAULT '',
	handled_at BIGINT NOT NULL DEFAULT 0,
	comment TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_open_key ON events(host_id, agg_key, status, last_seen);
CREATE INDEX events_last_seen ON events(last_seen);
CREATE INDEX events_category ON events(category, last_seen);
CREATE TABLE finding_ids (
	id TEXT PRIMARY KEY,
	event_id TEXT NOT NULL,
	received_at BIGINT NOT NULL
);
CREATE INDEX finding_ids_event ON finding_ids(event_id);
CREATE TABLE tasks (
	id TEXT PRIMARY KEY,
	type TEXT NOT NULL,
	params TEXT NOT NULL,
	created_by TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE TABLE task_hosts (
	task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
	host_id TEXT NOT NULL REFERENCES hosts(id),
	state TEXT NOT NULL,
	progress INTEGER NOT NULL DEFAULT 0,
	message TEXT NOT NULL DEFAULT '',
	result TEXT NOT NULL DEFAULT '',
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (task_id, host_id)
);
CREATE INDEX task_hosts_host_state ON task_hosts(host_id, state);
CREATE TABLE audit_log (
	id TEXT PRIMARY KEY,
	at BIGINT NOT NULL,
	actor TEXT NOT NULL,
	action TEXT NOT NULL,
	target TEXT NOT NULL,
	detail TEXT NOT NULL,
	remote TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log(at);
`,
	2: `
CREATE TABLE policies (
	scope TEXT PRIMARY KEY,
	body TEXT NOT NULL,
	version TEXT NOT NULL,
	updated_by TEXT NOT NULL,
	updated_at BIGINT NOT NULL
);
CREATE TABLE blocks (
	host_id TEXT NOT NULL REFERENCES hosts(id),
	prefix TEXT NOT NULL,
	expires_at BIGINT NOT NULL,
	reason TEXT NOT NULL,
	source TEXT NOT NULL,
	reported_at BIGINT NOT NULL,
	PRIMARY KEY (host_id, prefix)
);
CREATE INDEX blocks_prefix ON blocks(prefix);
ALTER TABLE hosts ADD COLUMN firewall TEXT NOT NULL DEFAULT '';
`,
	3: `
CREATE TABLE reputation (
	sha256 TEXT NOT NULL,
	source TEXT NOT NULL,
	verdict TEXT NOT NULL,
	family TEXT NOT NULL,
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (sha256, source)
);
`,
	4: `
CREATE TABLE host_inventory (
	host_id TEXT PRIMARY KEY REFERENCES hosts(id),
	generation BIGINT NOT NULL,
	os_id TEXT NOT NULL,
	os_version TEXT NOT NULL,
	os_codename TEXT NOT NULL,
	os_pretty TEXT NOT NULL,
	package_count INTEGER NOT NULL,
	updated_at BIGINT NOT NULL
);
CREATE TABLE host_packages (
	host_id TEXT NOT NULL REFERENCES hosts(id),
	pkg_key TEXT NOT NULL,
	ecosystem TEXT NOT NULL,
	name TEXT NOT NULL,
	version TEXT NOT NULL,
	source_name TEXT NOT NULL,
	source_version TEXT NOT NULL,
	arch TEXT NOT NULL,
	location TEXT NOT NULL,
	purl TEXT NOT NULL,
	extractor TEXT NOT NULL,
	PRIMARY KEY (host_id, pkg_key)
);
CREATE TABLE host_vulns (
	host_id TEXT NOT NULL REFERENCES hosts(id),
	advisory TEXT NOT NULL,
	pkg_key TEXT NOT NULL,
	ecosystem TEXT NOT NULL,
	package TEXT NOT NULL,
	installed TEXT NOT NULL,
	fixed TEXT NOT NULL,
	fix_command TEXT NOT NULL,
	location TEXT NOT NULL,
	aliases TEXT NOT NULL,
	summary TEXT NOT NULL,
	severity TEXT NOT NULL,
	score DOUBLE PRECISION NOT NULL,
	emergency TEXT NOT NULL,
	first_seen BIGINT NOT NULL,
	last_seen BIGINT NOT NULL,
	PRIMARY KEY (host_id, advisory, pkg_key)
);
CREATE INDEX host_vulns_advisory ON host_vulns(advisory);
CREATE TABLE vuln_acceptances (
	id TEXT PRIMARY KEY,
	advisory TEXT NOT NULL,
	host_id TEXT NOT NULL,
	until_at BIGINT NOT NULL,
	created_by TEXT NOT NULL,
	comment TEXT NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX vuln_acceptances_scope ON vuln_acceptances(advisory, host_id);
CREATE TABLE vulndb_archives (
	name TEXT PRIMARY KEY,
	sha256 TEXT NOT NULL,
	size BIGINT NOT NULL,
	records TEXT NOT NULL,
	source TEXT NOT NULL,
	imported_by TEXT NOT NULL,
	imported_at BIGINT NOT NULL
);
`,
	5: `
CREATE TABLE webhooks (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL,
	url TEXT NOT NULL,
	secret TEXT NOT NULL,
	min_severity INTEGER NOT NULL,
	categories TEXT NOT NULL,
	enabled INTEGER NOT NULL,
	created_by TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	last_status TEXT NOT NULL DEFAULT '',
	last_attempt BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX events_status_last_seen ON events(status, last_seen);
CREATE INDEX events_host_last_seen ON events(host_id, last_seen);
CREATE INDEX events_first_seen ON events(first_seen);
CREATE INDEX events_status_severity_category ON events(status, severity, category);
CREATE INDEX events_severity_last_seen ON events(severity, last_seen);
CREATE INDEX hosts_hostname ON hosts(hostname, id);
CREATE INDEX task_hosts_host_updated ON task_hosts(host_id, updated_at);
`,
}

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var newest int
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&newest); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if newest > len(migrations)-1 {
		return fmt.Errorf("database schema version %d is newer than this console knows (%d): upgrade the console", newest, len(migrations)-1)
	}
	applied := map[int]bool{}
	rows, err := s.db.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("read schema versions: %w", err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("read schema versions: %w", err)
		}
		applied[v] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read schema versions: %w", err)
	}
	for v := 1; v < len(migrations); v++ {
		if applied[v] || migrations[v] == "" {
			continue
		}
		err := s.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)`), v, ms(s.Now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("apply migration %d: %w", v, err)
		}
	}
	return nil
}

// SchemaVersion returns the applied schema version.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}
