// Package inventory lists the software installed on a host: OS packages from the dpkg, rpm
// (SQLite, NDB and Berkeley DB) and apk databases, and language packages in well-known places
// (Java archives including nested jars, Python site-packages, node_modules, Go binaries' build
// information). Extraction is osv-scalibr's; this package chooses where to look, names each
// package's OSV ecosystem from the host's os-release, and turns the result into
// finding.Package. It also computes the difference between two inventories, which is what the
// agent sends after the first full one.
//
// It reads package metadata only and never sends file contents anywhere; matching against
// vulnerability data happens in the console (internal/detect/vuln).
package inventory

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/google/osv-scalibr/extractor"
	"github.com/google/osv-scalibr/extractor/filesystem"
	"github.com/google/osv-scalibr/extractor/filesystem/language/golang/gobinary"
	"github.com/google/osv-scalibr/extractor/filesystem/language/java/archive"
	"github.com/google/osv-scalibr/extractor/filesystem/language/javascript/packagejson"
	"github.com/google/osv-scalibr/extractor/filesystem/language/python/wheelegg"
	"github.com/google/osv-scalibr/extractor/filesystem/os/apk"
	apkmeta "github.com/google/osv-scalibr/extractor/filesystem/os/apk/metadata"
	"github.com/google/osv-scalibr/extractor/filesystem/os/dpkg"
	dpkgmeta "github.com/google/osv-scalibr/extractor/filesystem/os/dpkg/metadata"
	"github.com/google/osv-scalibr/extractor/filesystem/os/rpm"
	rpmmeta "github.com/google/osv-scalibr/extractor/filesystem/os/rpm/metadata"
	scalibrfs "github.com/google/osv-scalibr/fs"
	scalibrlog "github.com/google/osv-scalibr/log"
	"github.com/google/osv-scalibr/stats"

	cpb "github.com/google/osv-scalibr/binary/proto/config_go_proto"

	"github.com/palisade-cwpp/palisade/internal/agent/hostinfo"
	"github.com/palisade-cwpp/palisade/internal/finding"
)

// Config says where to look. Zero values mean the defaults.
type Config struct {
	// Root is the file system root to inventory; "/" by default (tests use a temporary tree).
	Root string
	// LanguageDirs are the absolute directories (under Root) searched for Java archives, Python
	// site-packages, node_modules and Go binaries. Default: DefaultLanguageDirs. An empty,
	// non-nil slice disables language packages.
	LanguageDirs []string
	// SkipDirs are never walked (absolute, under Root), e.g. the agent's data directory.
	SkipDirs []string
	// MaxInodes bounds the language walk; default 500,000.
	MaxInodes int
}

// DefaultLanguageDirs are where applications usually live on a server. Home directories are
// left out by default: developers' node_modules trees are large and rarely what runs.
var DefaultLanguageDirs = []string{"/opt", "/srv", "/usr/local", "/usr/share/java", "/var/www", "/var/lib/tomcat9/webapps", "/var/lib/tomcat10/webapps"}

// OSDatabases are the package database files the OS extractors read, relative to the root. Their
// modification time tells the agent when to refresh the inventory early.
var OSDatabases = []string{
	"var/lib/dpkg/status",
	"var/lib/rpm/rpmdb.sqlite", "var/lib/rpm/Packages", "var/lib/rpm/Packages.db",
	"usr/lib/sysimage/rpm/rpmdb.sqlite", "usr/lib/sysimage/rpm/Packages.db", "usr/lib/sysimage/rpm/Packages",
	"lib/apk/db/installed",
}

// OSRelease is what the matcher needs of os-release(5).
type OSRelease struct {
	ID        string `json:"id"`
	VersionID string `json:"version_id,omitempty"`
	Codename  string `json:"version_codename,omitempty"`
	Pretty    string `json:"pretty_name,omitempty"`
}

// Inventory is one collection run's result.
type Inventory struct {
	OS       OSRelease
	Packages []finding.Package
	// Errors are the extractors or files that failed; the rest of the inventory is still good.
	Errors []string
}

// Collect runs the extractors over cfg.Root.
func Collect(ctx context.Context, cfg Config) (Inventory, error) {
	quietOnce.Do(func() { scalibrlog.SetLogger(quiet{}) })
	root := cfg.Root
	if root == "" {
		root = "/"
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return Inventory{}, err
	}
	var inv Inventory
	if kv, err := hostinfo.ReadOSRelease(root); err == nil {
		inv.OS = OSRelease{ID: kv["ID"], VersionID: kv["VERSION_ID"], Codename: kv["VERSION_CODENAME"], Pretty: kv["PRETTY_NAME"]}
	} else {
		inv.Errors = append(inv.Errors, err.Error())
	}
	langDirs := cfg.LanguageDirs
	if langDirs == nil {
		langDirs = DefaultLanguageDirs
	}
	var paths []string
	for _, p := range OSDatabases {
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			paths = append(paths, filepath.Join(root, p))
		}
	}
	for _, d := range langDirs {
		if st, err := os.Stat(filepath.Join(root, d)); err == nil && st.IsDir() {
			paths = append(paths, filepath.Join(root, d))
		}
	}
	if len(paths) == 0 {
		return inv, nil
	}
	exts, err := extractors()
	if err != nil {
		return inv, err
	}
	skip := []string{filepath.Join(root, "proc"), filepath.Join(root, "sys"), filepath.Join(root, "dev")}
	for _, d := range cfg.SkipDirs {
		skip = append(skip, filepath.Join(root, d))
	}
	maxInodes := cfg.MaxInodes
	if maxInodes <= 0 {
		maxInodes = 500_000
	}
	res, statuses, err := filesystem.Run(ctx, &filesystem.Config{
		Extractors:     exts,
		ScanRoots:      []*scalibrfs.ScanRoot{scalibrfs.RealFSScanRoot(root)},
		PathsToExtract: paths,
		DirsToSkip:     skip,
		MaxInodes:      maxInodes,
		Stats:          stats.NoopCollector{},
	})
	if err != nil {
		return inv, fmt.Errorf("extract packages: %w", err)
	}
	for _, st := range statuses {
		if st.Status != nil && st.Status.FailureReason != "" {
			inv.Errors = append(inv.Errors, st.Name+": "+st.Status.FailureReason)
		}
	}
	seen := map[string]bool{}
	for _, p := range res.Packages {
		fp, ok := convert(p, inv.OS)
		if !ok || fp.Validate() != nil || seen[fp.Key()] {
			continue
		}
		seen[fp.Key()] = true
		inv.Packages = append(inv.Packages, fp)
	}
	slices.SortFunc(inv.Packages, func(a, b finding.Package) int { return strings.Compare(a.Key(), b.Key()) })
	return inv, nil
}

func extractors() ([]filesystem.Extractor, error) {
	var out []filesystem.Extractor
	var errs []error
	for _, mk := range []func(*cpb.PluginConfig) (filesystem.Extractor, error){
		dpkg.New, rpm.New, apk.New, archive.New, wheelegg.New, packagejson.New, gobinary.New,
	} {
		e, err := mk(&cpb.PluginConfig{})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, e)
	}
	return out, errors.Join(errs...)
}

// convert turns a scalibr package into ours, naming its OSV ecosystem.
func convert(p *extractor.Package, osr OSRelease) (finding.Package, bool) {
	fp := finding.Package{Name: p.Name, Version: p.Version, Location: "/" + strings.TrimPrefix(p.Location.PathOrEmpty(), "/")}
	if len(p.Plugins) > 0 {
		fp.Extractor = p.Plugins[0]
	}
	if u := p.PURL(); u != nil {
		fp.PURL = u.String()
	}
	switch m := p.Metadata.(type) {
	case *dpkgmeta.Metadata:
		fp.Name, fp.SourceName, fp.SourceVersion, fp.Arch = m.PackageName, m.SourceName, m.SourceVersion, m.Architecture
		fp.Ecosystem = osEcosystem(osr)
	case *rpmmeta.Metadata:
		fp.Name, fp.Arch = m.PackageName, m.Architecture
		if m.Epoch > 0 {
			fp.Version = strconv.Itoa(m.Epoch) + ":" + p.Version
		}
		fp.SourceName = srpmName(m.SourceRPM)
		fp.Ecosystem = osEcosystem(osr)
	case *apkmeta.Metadata:
		fp.Name, fp.SourceName, fp.Arch = m.PackageName, m.OriginName, m.Architecture
		fp.Ecosystem = osEcosystem(osr)
	default:
		fp.Ecosystem = p.Ecosystem().String()
		if fp.Ecosystem == "Go" && fp.Name == "go" {
			fp.Name = "stdlib" // what the Go vulnerability database calls the toolchain's packages
		}
	}
	if fp.SourceName == fp.Name {
		fp.SourceName = ""
	}
	return fp, fp.Ecosystem != "" && fp.Name != "" && fp.Version != ""
}

// srpmName is the source package name of a SOURCERPM value: "openssh-8.7p1-38.el9.src.rpm" is
// "openssh" (name, then version and release, each without dashes).
func srpmName(srpm string) string {
	s := strings.TrimSuffix(srpm, ".src.rpm")
	for range 2 {
		i := strings.LastIndexByte(s, '-')
		if i <= 0 {
			return ""
		}
		s = s[:i]
	}
	return s
}

// osEcosystem names the OSV ecosystem of the host's OS packages from os-release: "Debian:12",
// "Ubuntu:22.04", "Alpine:v3.19", "Rocky Linux:9", "AlmaLinux:9", "Red Hat:9",
// "openSUSE:Leap 15.5", "SUSE:15.5". Distributions OSV does not cover keep their os-release
// name ("Fedora:40") and match nothing.
func osEcosystem(o OSRelease) string {
	major, _, _ := strings.Cut(o.VersionID, ".")
	with := func(family, release string) string {
		if release == "" {
			return family
		}
		return family + ":" + release
	}
	switch o.ID {
	case "debian":
		return with("Debian", major)
	case "ubuntu":
		return with("Ubuntu", o.VersionID)
	case "alpine":
		parts := strings.SplitN(o.VersionID, ".", 3)
		if len(parts) >= 2 {
			return "Alpine:v" + parts[0] + "." + parts[1]
		}
		return "Alpine"
	case "rocky":
		return with("Rocky Linux", major)
	case "almalinux":
		return with("AlmaLinux", major)
	case "rhel":
		return with("Red Hat", major)
	case "opensuse-leap":
		return with("openSUSE", "Leap "+o.VersionID)
	case "sles":
		return with("SUSE", o.VersionID)
	}
	if o.ID == "" {
		return ""
	}
	return with(strings.ToUpper(o.ID[:1])+o.ID[1:], o.VersionID)
}

// DatabaseStamp is the latest modification time (Unix nanoseconds) of the OS package databases
// under root, so a caller can tell that packages were installed or removed since it last looked.
func DatabaseStamp(root string) int64 {
	var latest int64
	for _, p := range OSDatabases {
		if st, err := os.Stat(filepath.Join(root, p)); err == nil && st.ModTime().UnixNano() > latest {
			latest = st.ModTime().UnixNano()
		}
	}
	return latest
}

// quiet discards osv-scalibr's progress logging, which goes to the standard logger by default;
// failures reach the caller through the extractors' statuses instead.
type quiet struct{}

var quietOnce sync.Once

func (quiet) Errorf(string, ...any) {}
func (quiet) Error(...any)          {}
func (quiet) Warnf(string, ...any)  {}
func (quiet) Warn(...any)           {}
func (quiet) Infof(string, ...any)  {}
func (quiet) Info(...any)           {}
func (quiet) Debugf(string, ...any) {}
func (quiet) Debug(...any)          {}
