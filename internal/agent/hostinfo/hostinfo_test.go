package hostinfo

import (
	"errors"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Real os-release files, as shipped by each distribution.
var osReleaseFixtures = []struct {
	name                    string
	content                 string
	id, version, prettyName string
}{
	{
		name: "debian-12",
		content: `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
`,
		id: "debian", version: "12", prettyName: "Debian GNU/Linux 12 (bookworm)",
	},
	{
		name: "ubuntu-22.04",
		content: `PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.4 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
SUPPORT_URL="https://help.ubuntu.com/"
BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"
PRIVACY_POLICY_URL="https://www.ubuntu.com/legal/terms-and-policies/privacy-policy"
UBUNTU_CODENAME=jammy
`,
		id: "ubuntu", version: "22.04", prettyName: "Ubuntu 22.04.4 LTS",
	},
	{
		name: "rocky-9",
		content: `NAME="Rocky Linux"
VERSION="9.3 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.3"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)"
ANSI_COLOR="0;32"
LOGO="fedora-logo-icon"
CPE_NAME="cpe:/o:rocky:rocky:9::baseos"
HOME_URL="https://rockylinux.org/"
BUG_REPORT_URL="https://bugs.rockylinux.org/"
SUPPORT_END="2032-05-31"
ROCKY_SUPPORT_PRODUCT="Rocky-Linux-9"
ROCKY_SUPPORT_PRODUCT_VERSION="9.3"
REDHAT_SUPPORT_PRODUCT="Rocky Linux"
REDHAT_SUPPORT_PRODUCT_VERSION="9.3"
`,
		id: "rocky", version: "9.3", prettyName: "Rocky Linux 9.3 (Blue Onyx)",
	},
	{
		name: "alpine-3.19",
		content: `NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.19.1
PRETTY_NAME="Alpine Linux v3.19"
HOME_URL="https://alpinelinux.org/"
BUG_REPORT_URL="https://gitlab.alpinelinux.org/alpine/aports/-/issues"
`,
		id: "alpine", version: "3.19.1", prettyName: "Alpine Linux v3.19",
	},
}

func writeFile(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fixtureCollector reads files under a temporary root and has fixed non-file sources.
func fixtureCollector(t *testing.T) (*collector, string) {
	t.Helper()
	root := t.TempDir()
	c := newCollector(root)
	c.hostname = func() (string, error) { return "web-1", nil }
	c.uname = func() (string, string, error) { return "6.1.0-18-amd64", "x86_64", nil }
	c.addrs = func() ([]net.Addr, error) { return nil, nil }
	c.goarch = "amd64"
	return c, root
}

func TestCollectOSReleaseDistros(t *testing.T) {
	for _, fx := range osReleaseFixtures {
		t.Run(fx.name, func(t *testing.T) {
			c, root := fixtureCollector(t)
			writeFile(t, root, "etc/os-release", fx.content)
			facts, err := c.collect("1.2.3")
			if err != nil {
				t.Fatal(err)
			}
			if facts.OSID != fx.id || facts.OSVersion != fx.version || facts.OSPretty != fx.prettyName {
				t.Errorf("got ID=%q VERSION_ID=%q PRETTY_NAME=%q, want %q %q %q",
					facts.OSID, facts.OSVersion, facts.OSPretty, fx.id, fx.version, fx.prettyName)
			}
		})
	}
}

func TestCollectOSReleaseFallback(t *testing.T) {
	c, root := fixtureCollector(t)
	writeFile(t, root, "usr/lib/os-release", osReleaseFixtures[2].content)
	facts, err := c.collect("v")
	if err != nil {
		t.Fatal(err)
	}
	if facts.OSID != "rocky" || facts.OSVersion != "9.3" {
		t.Errorf("fallback: got %q %q", facts.OSID, facts.OSVersion)
	}

	// /etc/os-release wins over /usr/lib/os-release.
	writeFile(t, root, "etc/os-release", osReleaseFixtures[0].content)
	facts, err = c.collect("v")
	if err != nil {
		t.Fatal(err)
	}
	if facts.OSID != "debian" {
		t.Errorf("etc should win: got %q", facts.OSID)
	}
}

func TestCollectOSReleaseDefaults(t *testing.T) {
	c, root := fixtureCollector(t)
	writeFile(t, root, "etc/os-release", "NAME=Something\n")
	facts, err := c.collect("v")
	if err != nil {
		t.Fatal(err)
	}
	if facts.OSID != "linux" || facts.OSPretty != "Linux" || facts.OSVersion != "" {
		t.Errorf("defaults: got %q %q %q", facts.OSID, facts.OSPretty, facts.OSVersion)
	}
}

func TestParseOSReleaseSyntax(t *testing.T) {
	in := "# comment line\n" +
		"   # indented comment\n" +
		"\n" +
		"A=plain\n" +
		"B=\"double quoted with spaces\"\n" +
		"C='single $quoted \\n literal'\n" +
		"D=\"esc \\\"quote\\\" \\$dollar \\\\ back \\`tick\\` \\n kept\"\n" +
		"E=un\\ quoted\\\"x\n" +
		"F=\"a\"'b'c\n" +
		"G=value # trailing comment\n" +
		"H=\"multi\nline\"\n" +
		"I=\r\n" +
		"J=crlf\r\n" +
		"not an assignment\n" +
		"1BAD=x\n" +
		"K-EY=x\n" +
		"  L=indented\n" +
		"A=override\n" +
		"M=\"cont\\\ninued\"\n" +
		"N=\"unterminated"
	got := parseOSRelease([]byte(in))
	want := map[string]string{
		"A": "override",
		"B": "double quoted with spaces",
		"C": `single $quoted \n literal`,
		"D": "esc \"quote\" $dollar \\ back `tick` \\n kept",
		"E": "un quoted\"x",
		"F": "abc",
		"G": "value",
		"H": "multi\nline",
		"I": "",
		"J": "crlf",
		"L": "indented",
		"M": "continued",
		"N": "unterminated",
	}
	if !maps.Equal(got, want) {
		for _, k := range slices.Sorted(maps.Keys(want)) {
			if got[k] != want[k] {
				t.Errorf("%s: got %q, want %q", k, got[k], want[k])
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("unexpected key %q=%q", k, got[k])
			}
		}
	}
}

func TestParseBtime(t *testing.T) {
	stat := `cpu  4705 356 584 3699 23 23 0 0 0 0
cpu0 1393280 32966 572056 13343292 6130 0 17875 0 23 0
intr 114930548 113199788 3 0 5 263 0 4 [... more ...]
ctxt 1990473
btime 1062191376
processes 2915
procs_running 1
procs_blocked 0
softirq 183433 0 21755 12 39 1137 231 21459 2263
`
	got, err := parseBtime(strings.NewReader(stat))
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Unix(1062191376, 0).UTC(); !got.Equal(want) {
		t.Errorf("got %v, want %v", got, want)
	}

	for _, bad := range []string{
		"",
		"cpu 1 2 3\n",
		"btime\n",
		"btime abc\n",
		"btime -5\n",
		"btimex 12\n",
	} {
		if _, err := parseBtime(strings.NewReader(bad)); err == nil {
			t.Errorf("parseBtime(%q): want error", bad)
		}
	}

	// A very long intr line before btime must not hide it.
	long := "intr " + strings.Repeat("0 ", 200000) + "\nbtime 1700000000\n"
	if got, err := parseBtime(strings.NewReader(long)); err != nil || got.Unix() != 1700000000 {
		t.Errorf("long intr line: got %v, %v", got, err)
	}
}

func TestCollectFixtureHost(t *testing.T) {
	c, root := fixtureCollector(t)
	writeFile(t, root, "etc/os-release", osReleaseFixtures[0].content)
	writeFile(t, root, "proc/stat", "cpu 1 2 3\nbtime 1700000000\n")
	writeFile(t, root, "etc/machine-id", "0123456789abcdef0123456789abcdef\n")
	c.addrs = func() ([]net.Addr, error) {
		mk := func(s string) net.Addr {
			ip, n, err := net.ParseCIDR(s)
			if err != nil {
				t.Fatal(err)
			}
			n.IP = ip
			return n
		}
		return []net.Addr{
			mk("127.0.0.1/8"),
			mk("::1/128"),
			mk("fd00::2/64"),
			mk("192.0.2.2/24"),
			mk("fe80::fc:ff:fe00:1/64"),
			mk("169.254.10.1/16"),
			mk("10.0.0.5/8"),
			mk("2001:db8::1/64"),
			mk("10.0.0.5/8"), // same address on a second interface
			&net.IPAddr{IP: net.ParseIP("::ffff:198.51.100.7")},
		}, nil
	}
	facts, err := c.collect("1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if facts.Hostname != "web-1" || facts.Kernel != "6.1.0-18-amd64" || facts.Arch != "x86_64" ||
		facts.AgentVersion != "1.2.3" || facts.MachineID != "0123456789abcdef0123456789abcdef" ||
		facts.BootTime.Unix() != 1700000000 || facts.OSID != "debian" {
		t.Errorf("facts: %+v", facts)
	}
	wantIPs := []string{"10.0.0.5", "192.0.2.2", "198.51.100.7", "2001:db8::1", "fd00::2"}
	if !slices.Equal(facts.IPAddresses, wantIPs) {
		t.Errorf("IPs: got %v, want %v", facts.IPAddresses, wantIPs)
	}
}

func TestCollectMissingFiles(t *testing.T) {
	c, root := fixtureCollector(t)
	writeFile(t, root, "etc/machine-id", "uninitialized\n")
	facts, err := c.collect("v")
	if err != nil {
		t.Fatalf("missing files must not fail the whole: %v", err)
	}
	if facts.OSID != "" || facts.MachineID != "" || !facts.BootTime.IsZero() {
		t.Errorf("missing files should leave fields empty: %+v", facts)
	}
	if facts.Hostname != "web-1" {
		t.Errorf("hostname: %q", facts.Hostname)
	}

	// Fallback machine ID.
	writeFile(t, root, "var/lib/dbus/machine-id", "fedcba9876543210fedcba9876543210")
	facts, err = c.collect("v")
	if err != nil || facts.MachineID != "fedcba9876543210fedcba9876543210" {
		t.Errorf("dbus machine-id fallback: %q, %v", facts.MachineID, err)
	}
}

func TestCollectNothingReadable(t *testing.T) {
	c, _ := fixtureCollector(t)
	fail := errors.New("boom")
	c.hostname = func() (string, error) { return "", fail }
	c.uname = func() (string, string, error) { return "", "", fail }
	c.addrs = func() ([]net.Addr, error) { return nil, fail }
	facts, err := c.collect("v9")
	if err == nil {
		t.Fatal("want an error when nothing could be read")
	}
	if !errors.Is(err, fail) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error should wrap the causes: %v", err)
	}
	if facts.AgentVersion != "v9" {
		t.Errorf("agent version lost: %+v", facts)
	}
}

func TestUnameArch(t *testing.T) {
	for _, tc := range []struct{ goarch, machine, want string }{
		{"amd64", "x86_64", "x86_64"},
		{"amd64", "", "x86_64"},
		{"arm64", "aarch64", "aarch64"},
		{"386", "x86_64", "i686"},
		{"arm", "armv6l", "armv6l"},
		{"arm", "", "armv7l"},
		{"wasm", "", "wasm"},
		{"sparc64", "sparc64", "sparc64"},
	} {
		if got := unameArch(tc.goarch, tc.machine); got != tc.want {
			t.Errorf("unameArch(%q, %q) = %q, want %q", tc.goarch, tc.machine, got, tc.want)
		}
	}
}

// TestCollectLive runs against the real host; it checks only what every Linux host has.
func TestCollectLive(t *testing.T) {
	facts, err := Collect("test")
	if err != nil {
		t.Fatal(err)
	}
	if facts.Hostname == "" || facts.Kernel == "" || facts.Arch == "" || facts.BootTime.IsZero() {
		t.Errorf("live facts incomplete: %+v", facts)
	}
	if facts.BootTime.After(time.Now()) {
		t.Errorf("boot time in the future: %v", facts.BootTime)
	}
	for _, ip := range facts.IPAddresses {
		if strings.HasPrefix(ip, "127.") || ip == "::1" || strings.HasPrefix(ip, "fe80:") {
			t.Errorf("loopback or link-local address reported: %s", ip)
		}
	}
	t.Logf("%+v", facts)
}

func FuzzParseOSRelease(f *testing.F) {
	for _, fx := range osReleaseFixtures {
		f.Add([]byte(fx.content))
	}
	f.Add([]byte("A=\"x\\\n\"'y\n#c\nB=\\"))
	f.Add([]byte("=\n==\n'\"\\"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m := parseOSRelease(data)
		for k := range m {
			if k == "" || !isKeyByte(k[0], true) {
				t.Fatalf("bad key %q", k)
			}
			for i := 1; i < len(k); i++ {
				if !isKeyByte(k[i], false) {
					t.Fatalf("bad key %q", k)
				}
			}
		}
		// Values never contain more bytes than the input.
		for _, v := range m {
			if len(v) > len(data) {
				t.Fatalf("value longer than input")
			}
		}
	})
}
