package vuln

import (
	"strings"

	"github.com/google/osv-scalibr/semantic"
)

// splitEcosystem splits an OSV ecosystem into its family and release: "Ubuntu:22.04:LTS" is
// ("Ubuntu", "22.04:LTS"), "PyPI" is ("PyPI", "").
func splitEcosystem(eco string) (family, release string) {
	family, release, _ = strings.Cut(eco, ":")
	return family, release
}

// releaseKey normalises a distribution release so that the host's os-release and the OSV
// ecosystem suffix compare equal when they mean the same release:
//   - Ubuntu: "22.04:LTS" and "22.04" are one release; "Pro:22.04:LTS" (ESM) stays distinct.
//   - Red Hat, Rocky Linux, AlmaLinux: advisories are per major release
//     ("Red Hat:enterprise_linux:9::appstream", "Rocky Linux:9", host VERSION_ID "9.3" → "9").
//   - Alpine: "v3.19"; a host's "3.19.1" is "v3.19".
//
// Other ecosystems compare as written.
func releaseKey(family, release string) string {
	switch family {
	case "Ubuntu":
		return strings.TrimSuffix(release, ":LTS")
	case "Red Hat", "Rocky Linux", "AlmaLinux":
		for _, part := range strings.Split(release, ":") {
			if part != "" && part[0] >= '0' && part[0] <= '9' {
				major, _, _ := strings.Cut(part, ".")
				return major
			}
		}
		return release
	case "Alpine":
		r := strings.TrimPrefix(release, "v")
		if i := strings.IndexByte(r, '.'); i >= 0 {
			if j := strings.IndexByte(r[i+1:], '.'); j >= 0 {
				r = r[:i+1+j]
			}
		}
		if r == "" {
			return ""
		}
		return "v" + r
	}
	return release
}

// osFamilies are the ecosystems of OS packages: advisories are per distribution release and
// name source packages.
var osFamilies = map[string]bool{
	"Debian": true, "Ubuntu": true, "Alpine": true, "Red Hat": true, "Rocky Linux": true, "AlmaLinux": true,
	"openSUSE": true, "SUSE": true, "Mageia": true, "openEuler": true, "Wolfi": true, "Chainguard": true,
}

// parseVersion parses v in the ordering of ecosystem family; nil when it does not parse or the
// ecosystem has no known ordering.
func parseVersion(family, v string) semantic.Version {
	sv, err := semantic.Parse(v, family)
	if err != nil {
		return nil
	}
	return sv
}

// FixCommand is the command an operator runs to install the fixed version, or, for packages
// bundled into applications, what to change. Empty when no fix is known.
func FixCommand(ecosystem, name, fixed string) string {
	if fixed == "" {
		return ""
	}
	family, _ := splitEcosystem(ecosystem)
	switch family {
	case "Debian", "Ubuntu":
		return "apt-get install --only-upgrade " + name
	case "Red Hat", "Rocky Linux", "AlmaLinux", "Mageia", "openEuler":
		return "dnf upgrade " + name
	case "openSUSE", "SUSE":
		return "zypper update " + name
	case "Alpine", "Wolfi", "Chainguard":
		return "apk upgrade " + name
	case "PyPI":
		return "pip install --upgrade '" + name + ">=" + fixed + "'"
	case "npm":
		return "npm install " + name + "@" + fixed
	case "Go":
		return "go get " + name + "@v" + strings.TrimPrefix(fixed, "v") + " && rebuild the binary"
	case "Maven":
		return "upgrade " + name + " to " + fixed + " in the application that bundles it, then redeploy"
	case "RubyGems":
		return "gem update " + name
	case "crates.io":
		return "cargo update -p " + name + " --precise " + fixed
	}
	return "upgrade " + name + " to " + fixed
}
