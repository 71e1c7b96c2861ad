// Package vuln matches a host's installed packages against vulnerability data in OSV format, with
// each ecosystem's own version ordering and distribution release awareness. It runs in the
// console: agents send inventories, the console keeps them and rematches every host whenever the
// vulnerability data changes, without rescanning hosts.
//
// Data comes from the per-ecosystem all.zip archives osv.dev publishes (one OSV JSON record per
// file). An Index is immutable once built; a new import builds a new Index and swaps it in.
// Version ordering is osv-scalibr's semantic package (Debian/dpkg, RPM, Alpine, semver, PyPI,
// Maven, ...), the same code osv-scanner uses, so both tools order versions alike.
//
// It does not collect packages (internal/agent/inventory does) and does no network I/O.
//
// Anchor: osv-scanner (offline mode, same data), measured in bench/vuln.sh and docs/BENCHMARKS.md.
package vuln
