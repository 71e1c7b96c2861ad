package finding

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Package is one installed software package on a host, as the agent's inventory reports it and
// the console's vulnerability matcher reads it.
type Package struct {
	// Ecosystem is the OSV ecosystem the package belongs to, with the distribution release for OS
	// packages: "Debian:12", "Ubuntu:22.04:LTS", "Alpine:v3.19", "Rocky Linux:9", "PyPI", "Maven".
	Ecosystem string `json:"ecosystem"`
	Name      string `json:"name"`
	Version   string `json:"version"`
	// SourceName and SourceVersion are the source package the binary package was built from
	// (dpkg "Source:", rpm SOURCERPM, apk origin): Debian, Ubuntu and Alpine advisories name it.
	SourceName    string `json:"source_name,omitempty"`
	SourceVersion string `json:"source_version,omitempty"`
	Arch          string `json:"arch,omitempty"`
	// Location is the file the package was read from (the package database, the jar, the binary).
	Location string `json:"location,omitempty"`
	PURL     string `json:"purl,omitempty"`
	// Extractor names the collector that found the package, e.g. "os/dpkg", "java/archive".
	Extractor string `json:"extractor,omitempty"`
}

// Limits on one inventory entry; longer fields are refused, not truncated, because a truncated
// name or version would match the wrong advisories.
const (
	MaxPackageField    = 512
	MaxPackageLocation = 4096
)

// Key identifies the package within one host's inventory: the same name and version can be
// installed in several places (two jars, two virtualenvs).
func (p Package) Key() string {
	return p.Ecosystem + "\x00" + p.Name + "\x00" + p.Version + "\x00" + p.Arch + "\x00" + p.Location
}

// Validate checks that the fields needed for matching are present and bounded.
func (p Package) Validate() error {
	var errs []error
	if p.Ecosystem == "" || p.Name == "" || p.Version == "" {
		errs = append(errs, errors.New("package needs ecosystem, name and version"))
	}
	for _, f := range [...]struct{ name, v string }{{"ecosystem", p.Ecosystem}, {"name", p.Name}, {"version", p.Version},
		{"source_name", p.SourceName}, {"source_version", p.SourceVersion}, {"arch", p.Arch}, {"purl", p.PURL}, {"extractor", p.Extractor}} {
		if len(f.v) > MaxPackageField {
			errs = append(errs, fmt.Errorf("package %s longer than %d bytes", f.name, MaxPackageField))
		}
		if strings.IndexByte(f.v, 0) >= 0 || !utf8.ValidString(f.v) {
			errs = append(errs, fmt.Errorf("package %s contains a NUL byte or invalid UTF-8", f.name))
		}
	}
	if len(p.Location) > MaxPackageLocation || strings.IndexByte(p.Location, 0) >= 0 || !utf8.ValidString(p.Location) {
		errs = append(errs, fmt.Errorf("package location longer than %d bytes, or with a NUL byte or invalid UTF-8", MaxPackageLocation))
	}
	return errors.Join(errs...)
}
