package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

var (
	sshd   = finding.Package{Ecosystem: "Debian:12", Name: "openssh-server", SourceName: "openssh", Version: "1:9.2p1-2+deb12u2", Arch: "amd64", Location: "/var/lib/dpkg/status", Extractor: "os/dpkg"}
	curl   = finding.Package{Ecosystem: "Debian:12", Name: "curl", Version: "7.88.1-10+deb12u3", Arch: "amd64", Location: "/var/lib/dpkg/status", Extractor: "os/dpkg"}
	libc   = finding.Package{Ecosystem: "Debian:12", Name: "libc6", SourceName: "glibc", Version: "2.36-9+deb12u3", Arch: "amd64", Location: "/var/lib/dpkg/status", Extractor: "os/dpkg"}
	debian = OSRelease{ID: "debian", VersionID: "12", Codename: "bookworm", Pretty: "Debian GNU/Linux 12 (bookworm)"}
)

func TestInventoryFullThenDiffs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		addHost(t, s, "h-web1", "web1", "web")
		wantErrIs(t, "diff before any full inventory", s.ApplyInventoryDiff(ctx, "h-web1", 1, debian, []finding.Package{curl}, nil, 1), ErrInventoryGap)

		must(t, s.ReplaceInventory(ctx, "h-web1", 7, debian, []finding.Package{sshd, curl}))
		updated := curl
		updated.Version = "7.88.1-10+deb12u4"
		must(t, s.ApplyInventoryDiff(ctx, "h-web1", 8, debian, []finding.Package{updated, libc}, []finding.Package{curl}, 3))
		wantErrIs(t, "a skipped generation", s.ApplyInventoryDiff(ctx, "h-web1", 10, debian, nil, []finding.Package{libc}, 2), ErrInventoryGap)
		wantErrIs(t, "a diff whose total disagrees", s.ApplyInventoryDiff(ctx, "h-web1", 9, debian, nil, []finding.Package{libc}, 3), ErrInventoryGap)

		pkgs, total, err := s.HostPackages(ctx, "h-web1", PackageFilter{})
		must(t, err)
		if total != 3 || len(pkgs) != 3 || pkgs[0].Name != "curl" || pkgs[0].Version != "7.88.1-10+deb12u4" || pkgs[1] != libc || pkgs[2] != sshd {
			t.Errorf("packages after the diff: %d %+v", total, pkgs)
		}
		inv, err := s.Inventory(ctx, "h-web1")
		must(t, err)
		if inv.Generation != 8 || inv.Packages != 3 || inv.OS != debian {
			t.Errorf("inventory head %+v", inv)
		}
		if _, n, _ := s.HostPackages(ctx, "h-web1", PackageFilter{Name: "ssh"}); n != 1 {
			t.Errorf("name filter found %d, want 1 (by source name)", n)
		}
		hosts, err := s.InventoryHosts(ctx)
		must(t, err)
		if len(hosts) != 1 || hosts[0] != "h-web1" {
			t.Errorf("inventory hosts %v", hosts)
		}
	})
}

func hostVuln(host string, p finding.Package, adv, sev, fixed, emergency string) HostVuln {
	v := NewHostVuln(host, p)
	v.Advisory, v.Severity, v.Fixed, v.Emergency, v.Aliases = adv, sev, fixed, emergency, []string{"CVE-2024-6387"}
	if fixed != "" {
		v.FixCommand = "apt-get install --only-upgrade " + p.Name
	}
	return v
}

func TestHostVulnsLifecycleAndAcceptance(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		clock := useClock(s, t0)
		addHost(t, s, "h-web1", "web1", "web")
		addHost(t, s, "h-web2", "web2", "web")
		must(t, s.ReplaceInventory(ctx, "h-web1", 1, debian, []finding.Package{sshd, curl}))
		regre := hostVuln("h-web1", sshd, "DSA-5724-1", "high", "1:9.2p1-2+deb12u3", "regreSSHion")
		curlV := hostVuln("h-web1", curl, "DEBIAN-CVE-2023-38545", "critical", "7.88.1-10+deb12u4", "")
		added, removed, err := s.ReplaceHostVulns(ctx, "h-web1", []HostVuln{regre, curlV})
		must(t, err)
		if len(added) != 2 || removed != 0 {
			t.Errorf("first match: added %d removed %d", len(added), removed)
		}
		_, _, err = s.ReplaceHostVulns(ctx, "h-web2", []HostVuln{hostVuln("h-web2", sshd, "DSA-5724-1", "high", "1:9.2p1-2+deb12u3", "regreSSHion")})
		must(t, err)

		clock.Advance(time.Hour)
		must(t, s.ApplyInventoryDiff(ctx, "h-web1", 2, debian, nil, []finding.Package{curl}, 1))
		added, removed, err = s.ReplaceHostVulns(ctx, "h-web1", []HostVuln{regre})
		must(t, err)
		if len(added) != 0 || removed != 1 {
			t.Errorf("rematch: added %d removed %d, want curl gone", len(added), removed)
		}
		vs, total, err := s.HostVulns(ctx, VulnFilter{HostID: "h-web1"})
		must(t, err)
		if total != 1 || vs[0].Advisory != "DSA-5724-1" || !vs[0].FirstSeen.Equal(t0) || !vs[0].LastSeen.Equal(t0.Add(time.Hour)) ||
			vs[0].Status != "open" || vs[0].Hostname != "web1" || len(vs[0].Aliases) != 1 {
			t.Errorf("host vulns %+v", vs)
		}

		exp, n, err := s.VulnExposure(ctx, VulnFilter{})
		must(t, err)
		if n != 1 || exp[0].Hosts != 2 || exp[0].Emergency != "regreSSHion" || !exp[0].Fixable || len(exp[0].Packages) != 1 {
			t.Errorf("exposure %+v", exp)
		}

		a, err := s.AcceptVuln(ctx, Acceptance{ID: "va-1", Advisory: "DSA-5724-1", HostID: "h-web1", Until: t0.Add(48 * time.Hour), CreatedBy: "alice", Comment: "sshd is firewalled"})
		must(t, err)
		if vs, _, _ := s.HostVulns(ctx, VulnFilter{HostID: "h-web1"}); vs[0].Status != "accepted" || vs[0].Acceptance.Comment != "sshd is firewalled" {
			t.Errorf("after accept: %+v", vs[0])
		}
		if _, n, _ := s.HostVulns(ctx, VulnFilter{Status: "open"}); n != 1 {
			t.Errorf("open vulns %d, want web2's only", n)
		}
		exp, _, _ = s.VulnExposure(ctx, VulnFilter{})
		if exp[0].Hosts != 1 || exp[0].AcceptedHosts != 1 {
			t.Errorf("exposure after accept %+v", exp[0])
		}
		clock.Advance(72 * time.Hour)
		if vs, _, _ := s.HostVulns(ctx, VulnFilter{HostID: "h-web1"}); vs[0].Status != "open" {
			t.Errorf("acceptance outlived its expiry: %+v", vs[0])
		}
		_, err = s.AcceptVuln(ctx, Acceptance{ID: "va-2", Advisory: "DSA-5724-1", Until: clock.Now().Add(time.Hour), CreatedBy: "alice"})
		must(t, err)
		if _, n, _ := s.HostVulns(ctx, VulnFilter{Status: "open"}); n != 0 {
			t.Errorf("a fleet-wide acceptance left %d open", n)
		}
		if _, err := s.DeleteAcceptance(ctx, "va-2"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.DeleteAcceptance(ctx, "va-2"); !errors.Is(err, ErrNotFound) {
			t.Errorf("second delete: %v", err)
		}
		if _, n, _ := s.HostVulns(ctx, VulnFilter{Emergency: true, MinSeverity: 3, Fixable: true}); n != 2 {
			t.Errorf("filtered %d, want 2", n)
		}
		_ = a
	})
}

func TestVulnArchives(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		useClock(s, t0)
		a := VulnArchive{Name: "Debian.zip", SHA256: "ab", Size: 10, Records: map[string]int{"Debian": 3}, Source: "upload", ImportedBy: "admin", ImportedAt: t0}
		must(t, s.PutVulnArchive(ctx, a))
		a.Size = 11
		must(t, s.PutVulnArchive(ctx, a))
		got, err := s.VulnArchives(ctx)
		must(t, err)
		if len(got) != 1 || got[0].Size != 11 || got[0].Records["Debian"] != 3 || !got[0].ImportedAt.Equal(t0) {
			t.Errorf("archives %+v", got)
		}
	})
}

func TestReplaceFleetVulns(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		addHost(t, s, "h-web1", "web1", "web")
		addHost(t, s, "h-web2", "web2", "web")
		sets := []HostVulnSet{
			{HostID: "h-web1", Vulns: []HostVuln{hostVuln("h-web1", sshd, "DSA-5724-1", "high", "1:9.2p1-2+deb12u3", "regreSSHion")}},
			{HostID: "h-web2", Vulns: []HostVuln{hostVuln("h-web2", curl, "DEBIAN-CVE-2023-38545", "high", "7.88.1-10+deb12u4", "")}},
		}
		must(t, s.ReplaceFleetVulns(ctx, sets))
		if len(sets[0].Added) != 1 || len(sets[1].Added) != 1 {
			t.Errorf("added %d and %d, want 1 each", len(sets[0].Added), len(sets[1].Added))
		}
		sets[1].Vulns = nil
		must(t, s.ReplaceFleetVulns(ctx, sets))
		if len(sets[0].Added) != 0 {
			t.Errorf("unchanged vulnerability reported as new")
		}
		if _, n, _ := s.HostVulns(ctx, VulnFilter{}); n != 1 {
			t.Errorf("%d vulnerabilities, want web1's only", n)
		}
	})
}

func TestReplaceFleetVulnsChangesAndRollback(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		clock := useClock(s, t0)
		addHost(t, s, "h-web1", "web1", "web")
		addHost(t, s, "h-web2", "web2", "web")
		regre := hostVuln("h-web1", sshd, "DSA-5724-1", "high", "", "regreSSHion")
		curlV := hostVuln("h-web1", curl, "DEBIAN-CVE-2023-38545", "critical", "7.88.1-10+deb12u4", "")
		libcV := hostVuln("h-web2", libc, "DSA-5514-1", "high", "2.36-9+deb12u4", "")
		must(t, s.ReplaceFleetVulns(ctx, []HostVulnSet{{HostID: "h-web1", Vulns: []HostVuln{regre, curlV, curlV}}, {HostID: "h-web2", Vulns: []HostVuln{libcV}}}))

		// A fix is published for regreSSHion, curl's finding is gone, web2 is unchanged.
		clock.Advance(time.Hour)
		fixedV := hostVuln("h-web1", sshd, "DSA-5724-1", "high", "1:9.2p1-2+deb12u3", "regreSSHion")
		sets := []HostVulnSet{{HostID: "h-web1", Vulns: []HostVuln{fixedV}}, {HostID: "h-web2", Vulns: []HostVuln{libcV}}}
		must(t, s.ReplaceFleetVulns(ctx, sets))
		if len(sets[0].Added) != 0 || sets[0].Removed != 1 || len(sets[1].Added) != 0 || sets[1].Removed != 0 {
			t.Errorf("rematch: %+v", sets)
		}
		vs, n, err := s.HostVulns(ctx, VulnFilter{HostID: "h-web1"})
		must(t, err)
		if n != 1 || vs[0].Fixed != "1:9.2p1-2+deb12u3" || vs[0].FixCommand == "" || !vs[0].FirstSeen.Equal(t0) {
			t.Errorf("after the fix was published: %+v", vs)
		}

		// The same host twice in one call is replaced twice, in order.
		sets = []HostVulnSet{{HostID: "h-web2", Vulns: []HostVuln{libcV, hostVuln("h-web2", curl, "DEBIAN-CVE-2023-38545", "critical", "", "")}},
			{HostID: "h-web2", Vulns: []HostVuln{libcV}}}
		must(t, s.ReplaceFleetVulns(ctx, sets))
		if len(sets[0].Added) != 1 || sets[1].Removed != 1 || len(sets[1].Added) != 0 {
			t.Errorf("host named twice: %+v", sets)
		}
		if _, n, _ := s.HostVulns(ctx, VulnFilter{HostID: "h-web2"}); n != 1 {
			t.Errorf("web2 holds %d, want 1", n)
		}

		// A failing batch stores nothing, including rows written before the failure (web1's
		// new finding, stored before the unknown host's rows are refused).
		err = s.ReplaceFleetVulns(ctx, []HostVulnSet{{HostID: "h-web1", Vulns: []HostVuln{fixedV, curlV}}, {HostID: "h-web1", Vulns: []HostVuln{fixedV, curlV}},
			{HostID: "h-none", Vulns: []HostVuln{hostVuln("h-none", curl, "DEBIAN-CVE-2023-38545", "critical", "", "")}}})
		if err == nil {
			t.Fatal("a vulnerability of an unknown host was stored")
		}
		if _, n, _ := s.HostVulns(ctx, VulnFilter{HostID: "h-web1"}); n != 1 {
			t.Errorf("web1 holds %d after a failed batch, want 1", n)
		}
	})
}

func TestVulnExposureAcceptances(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		clock := useClock(s, t0)
		for _, h := range []string{"h-web1", "h-web2", "h-web3"} {
			addHost(t, s, h, h[2:], "web")
			// Two packages of one advisory on every host: hosts are counted once.
			_, _, err := s.ReplaceHostVulns(ctx, h, []HostVuln{hostVuln(h, sshd, "DSA-5724-1", "high", "", "regreSSHion"),
				hostVuln(h, libc, "DSA-5724-1", "high", "", "regreSSHion"), hostVuln(h, curl, "DEBIAN-CVE-2023-38545", "critical", "", "")})
			must(t, err)
		}
		counts := func() map[string][2]int {
			t.Helper()
			exp, n, err := s.VulnExposure(ctx, VulnFilter{})
			must(t, err)
			out := map[string][2]int{}
			for _, e := range exp {
				out[e.Advisory] = [2]int{e.Hosts, e.AcceptedHosts}
				if want := map[string]int{"DSA-5724-1": 2, "DEBIAN-CVE-2023-38545": 1}[e.Advisory]; len(e.Packages) != want {
					t.Errorf("%s packages %v", e.Advisory, e.Packages)
				}
			}
			if n != 2 || len(out) != 2 {
				t.Errorf("%d advisories %v", n, out)
			}
			return out
		}
		if c := counts(); c["DSA-5724-1"] != [2]int{3, 0} || c["DEBIAN-CVE-2023-38545"] != [2]int{3, 0} {
			t.Errorf("no acceptances: %v", c)
		}
		_, err := s.AcceptVuln(ctx, Acceptance{ID: "va-1", Advisory: "DSA-5724-1", HostID: "h-web1", Until: t0.Add(time.Hour), CreatedBy: "alice"})
		must(t, err)
		_, err = s.AcceptVuln(ctx, Acceptance{ID: "va-2", Advisory: "DEBIAN-CVE-2023-38545", HostID: "h-web2", Until: t0.Add(-time.Hour), CreatedBy: "alice"})
		must(t, err)
		if c := counts(); c["DSA-5724-1"] != [2]int{2, 1} || c["DEBIAN-CVE-2023-38545"] != [2]int{3, 0} {
			t.Errorf("one host accepted, one expired: %v", c)
		}
		// A fleet-wide acceptance next to a host's: every host is accepted, none twice.
		_, err = s.AcceptVuln(ctx, Acceptance{ID: "va-3", Advisory: "DSA-5724-1", Until: t0.Add(2 * time.Hour), CreatedBy: "alice"})
		must(t, err)
		if c := counts(); c["DSA-5724-1"] != [2]int{0, 3} {
			t.Errorf("fleet-wide acceptance: %v", c)
		}
		clock.Advance(90 * time.Minute) // the host's acceptance expired, the fleet's holds
		if c := counts(); c["DSA-5724-1"] != [2]int{0, 3} {
			t.Errorf("fleet-wide acceptance after the host's expired: %v", c)
		}
		clock.Advance(time.Hour)
		if c := counts(); c["DSA-5724-1"] != [2]int{3, 0} {
			t.Errorf("all acceptances expired: %v", c)
		}
	})
}
