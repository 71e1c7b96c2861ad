package behavior

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"
)

// corpus builds realistic event streams: processes with pids, parents and times, the way the
// kernel source reports them.
type corpus struct {
	events []*Event
	now    time.Time
	pid    int32
	rng    *rand.Rand
}

func newCorpus(seed uint64) *corpus {
	return &corpus{now: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), pid: 2000, rng: rand.New(rand.NewPCG(seed, 1))}
}

func (c *corpus) tick() time.Time {
	c.now = c.now.Add(time.Duration(1+c.rng.IntN(20)) * time.Millisecond)
	return c.now
}

// proc makes a process; its ancestry is the parent's process and ancestry.
type cproc struct {
	p    Process
	ancs []Process
}

var (
	systemd = &cproc{p: Process{PID: 1, Exe: "/usr/lib/systemd/systemd", Args: []string{"/sbin/init"}, AUID: UnsetUID}}
)

func (c *corpus) spawn(parent *cproc, uid, euid uint32, tty string, exe string, args ...string) *cproc {
	c.pid++
	p := Process{PID: c.pid, Exe: exe, Args: args, UID: uid, EUID: euid, GID: uid, EGID: euid, TTY: tty, Cwd: "/", AUID: UnsetUID, Start: c.now}
	if parent != nil {
		p.PPID = parent.p.PID
		p.Cwd = parent.p.Cwd
		p.AUID = parent.p.AUID
		p.ContainerID = parent.p.ContainerID
	}
	p.Comm = p.Name()
	if len(p.Comm) > 15 {
		p.Comm = p.Comm[:15]
	}
	cp := &cproc{p: p}
	if parent != nil {
		cp.ancs = append([]Process{parent.p}, parent.ancs...)
		if len(cp.ancs) > 12 {
			cp.ancs = cp.ancs[:12]
		}
	}
	return cp
}

func (c *corpus) exec(parent *cproc, exe string, args ...string) *cproc {
	uid, tty := uint32(0), ""
	if parent != nil {
		uid, tty = parent.p.EUID, parent.p.TTY
	}
	return c.execAs(parent, uid, uid, tty, exe, args...)
}

func (c *corpus) execAs(parent *cproc, uid, euid uint32, tty, exe string, args ...string) *cproc {
	cp := c.spawn(parent, uid, euid, tty, exe, args...)
	std := [3]StdFD{{Type: FDPipe}, {Type: FDPipe}, {Type: FDPipe}}
	if tty != "" {
		std = [3]StdFD{{Type: FDTTY}, {Type: FDTTY}, {Type: FDTTY}}
	} else if parent == nil || parent.p.PID == 1 {
		std = [3]StdFD{{Type: FDNull}, {Type: FDUnix}, {Type: FDUnix}}
	}
	c.events = append(c.events, &Event{Kind: KindExec, Time: c.tick(), Proc: cp.p, Ancestors: cp.ancs, Std: std})
	return cp
}

func (c *corpus) connect(p *cproc, proto, remote string) {
	c.events = append(c.events, &Event{Kind: KindConnect, Time: c.tick(), Proc: p.p, Ancestors: p.ancs,
		Net: &Conn{Proto: proto, Local: netip.MustParseAddrPort("10.0.0.4:" + fmt.Sprint(30000+c.rng.IntN(30000))), Remote: netip.MustParseAddrPort(remote)}})
}

func (c *corpus) file(p *cproc, op, path string, mode uint32) {
	c.events = append(c.events, &Event{Kind: KindFile, Time: c.tick(), Proc: p.p, Ancestors: p.ancs, File: &FileOp{Path: path, Op: op, Mode: mode}})
}

func (c *corpus) exit(p *cproc) {
	c.events = append(c.events, &Event{Kind: KindExit, Time: c.tick(), Proc: p.p, Ancestors: p.ancs})
}

// packageBuild is a configure && make of a C project, started by a CI runner as an
// unprivileged user: the bulk of a build server's events.
func (c *corpus) packageBuild(files int) {
	runner := c.execAs(systemd, 998, 998, "", "/usr/bin/gitlab-runner", "gitlab-runner", "run")
	sh := c.exec(runner, "/usr/bin/bash", "bash", "--login")
	sh.p.Cwd = "/builds/acme/libfoo"
	g := c.exec(sh, "/usr/bin/git", "git", "clone", "--depth", "1", "https://git.example.org/acme/libfoo.git")
	c.exec(g, "/usr/lib/git-core/git-remote-https", "git-remote-https", "origin", "https://git.example.org/acme/libfoo.git")
	c.connect(g, "tcp", "198.51.100.40:443")
	w := c.exec(sh, "/usr/bin/wget", "wget", "-q", "-O", "deps.tar.gz", "https://downloads.example.org/deps-1.4.tar.gz")
	c.connect(w, "tcp", "198.51.100.41:443")
	c.exec(sh, "/usr/bin/tar", "tar", "xzf", "deps.tar.gz")
	c.exec(sh, "/usr/bin/chmod", "+x", "configure", "build-aux/install-sh")
	conf := c.exec(sh, "/usr/bin/bash", "/bin/bash", "./configure", "--prefix=/usr", "--enable-shared")
	for _, cmd := range [][]string{
		{"/usr/bin/uname", "uname", "-m"}, {"/usr/bin/sed", "sed", "-e", "s/^X//", "conftest.c"}, {"/usr/bin/grep", "grep", "-c", "HAVE_", "confdefs.h"},
		{"/usr/bin/expr", "expr", "X--prefix=/usr", ":", "X\\(-*\\)"}, {"/usr/bin/rm", "rm", "-f", "conftest", "conftest.o"},
		{"/usr/bin/gcc", "gcc", "-o", "conftest", "-g", "-O2", "conftest.c"}, {"/usr/bin/cat", "cat", "confdefs.h"},
		{"/usr/bin/mv", "mv", "-f", "conftest.h", "config.h"}, {"/usr/bin/chmod", "chmod", "+x", "config.status"},
		{"/usr/bin/mkdir", "mkdir", "-p", "src/.deps"}, {"/usr/bin/awk", "awk", "-f", "conf.awk", "Makefile.in"},
	} {
		c.exec(conf, cmd[0], cmd[1:]...)
	}
	c.exec(conf, "/builds/acme/libfoo/config.status", "./config.status")
	mk := c.exec(sh, "/usr/bin/make", "make", "-j2")
	for i := 0; i < files; i++ {
		src := fmt.Sprintf("src/mod%03d.c", i)
		obj := strings.TrimSuffix(src, ".c") + ".o"
		ksh := c.exec(mk, "/bin/sh", "/bin/sh", "-c", fmt.Sprintf("gcc -DHAVE_CONFIG_H -I. -I./include -g -O2 -Wall -MT %s -MD -MP -MF src/.deps/mod%03d.Tpo -c -o %s %s", obj, i, obj, src))
		gcc := c.exec(ksh, "/usr/bin/gcc", "gcc", "-DHAVE_CONFIG_H", "-I.", "-I./include", "-g", "-O2", "-Wall", "-c", "-o", obj, src)
		c.exec(gcc, "/usr/lib/gcc/x86_64-linux-gnu/12/cc1", "/usr/lib/gcc/x86_64-linux-gnu/12/cc1", "-quiet", "-I", ".", "-I", "./include", "-D", "HAVE_CONFIG_H", src, "-quiet", "-dumpbase", "mod.c", "-mtune=generic", "-march=x86-64", "-g", "-O2", "-Wall", "-o", "/tmp/ccA1b2C3.s")
		c.exec(gcc, "/usr/bin/x86_64-linux-gnu-as", "as", "--gdwarf-5", "--64", "-o", obj, "/tmp/ccA1b2C3.s")
		c.exec(ksh, "/usr/bin/mv", "mv", "-f", fmt.Sprintf("src/.deps/mod%03d.Tpo", i), fmt.Sprintf("src/.deps/mod%03d.Po", i))
	}
	c.exec(mk, "/usr/bin/ar", "ar", "cru", "libfoo.a", "src/mod000.o", "src/mod001.o")
	c.exec(mk, "/usr/bin/ranlib", "ranlib", "libfoo.a")
	ld := c.exec(mk, "/usr/bin/gcc", "gcc", "-shared", "-o", "libfoo.so.1.4.0", "src/mod000.o", "-lz")
	c2 := c.exec(ld, "/usr/lib/gcc/x86_64-linux-gnu/12/collect2", "/usr/lib/gcc/x86_64-linux-gnu/12/collect2", "-plugin", "liblto_plugin.so", "--eh-frame-hdr", "-m", "elf_x86_64", "-shared", "-o", "libfoo.so.1.4.0")
	c.exec(c2, "/usr/bin/ld", "/usr/bin/ld", "-plugin", "liblto_plugin.so", "-shared", "-o", "libfoo.so.1.4.0")
	c.exec(mk, "/bin/sh", "/bin/sh", "-c", "cd tests && make check")
	c.exec(mk, "/usr/bin/install", "install", "-c", "-m", "644", "libfoo.a", "/builds/acme/libfoo/dist/usr/lib")
	c.exec(sh, "/usr/bin/sed", "sed", "-i", "s/@VERSION@/1.4.0/", "dist/usr/lib/pkgconfig/foo.pc")
	c.exec(sh, "/usr/bin/python3.11", "python3", "scripts/gen_docs.py", "--out", "dist/doc")
}

// goTest is `go test ./...` of a Go module by a developer on a terminal.
func (c *corpus) goTest(sshd *cproc) {
	sh := c.execAs(sshd, 1000, 1000, "pts/1", "/usr/bin/bash", "-bash")
	sh.p.Cwd = "/home/alice/src/palisade"
	sh.p.AUID = 1000
	gt := c.exec(sh, "/usr/local/go/bin/go", "go", "test", "./...")
	for i, pkg := range []string{"finding", "spool", "detect/login", "detect/bruteforce"} {
		c.exec(gt, "/usr/local/go/pkg/tool/linux_amd64/compile", "compile", "-o", fmt.Sprintf("/tmp/go-build1234/b%03d/_pkg_.a", i), "-trimpath", "$WORK/b001=>", "-p", "github.com/palisade-cwpp/palisade/internal/"+pkg, "-lang=go1.26", "-complete", "-pack", "./"+pkg+".go")
		c.exec(gt, "/usr/local/go/pkg/tool/linux_amd64/vet", "vet", "-atomic", "-bool", "-buildtags", fmt.Sprintf("/tmp/go-build1234/b%03d/vet.cfg", i))
		c.exec(gt, "/usr/local/go/pkg/tool/linux_amd64/link", "link", "-o", fmt.Sprintf("/tmp/go-build1234/b%03d/%s.test", i, pkg), "-buildmode=exe")
		tb := c.exec(gt, fmt.Sprintf("/tmp/go-build1234/b%03d/%s.test", i, strings.ReplaceAll(pkg, "/", "_")), pkg+".test", "-test.paniconexit0", "-test.timeout=10m0s")
		c.connect(tb, "tcp", "127.0.0.1:5432")
	}
	c.exec(sh, "/usr/bin/git", "git", "status", "--short")
	c.exec(sh, "/usr/bin/id", "id", "-u")
	c.exec(sh, "/usr/bin/vim.basic", "vim", "internal/detect/behavior/engine.go")
}

// aptInstall is `sudo apt-get install` of a package whose maintainer scripts add a system user,
// a systemd unit and a cron job.
func (c *corpus) aptInstall(sh *cproc) {
	sudo := c.execAs(sh, 1000, 0, sh.p.TTY, "/usr/bin/sudo", "sudo", "apt-get", "install", "-y", "chrony")
	apt := c.execAs(sudo, 0, 0, sh.p.TTY, "/usr/bin/apt-get", "apt-get", "install", "-y", "chrony")
	m := c.exec(apt, "/usr/lib/apt/methods/http", "/usr/lib/apt/methods/http")
	c.connect(m, "tcp", "151.101.2.132:80")
	dpkg := c.exec(apt, "/usr/bin/dpkg", "/usr/bin/dpkg", "--status-fd", "35", "--unpack", "--auto-deconfigure", "/var/cache/apt/archives/chrony_4.3-2_amd64.deb")
	c.file(dpkg, "create", "/lib/systemd/system/chrony.service", 0)
	c.file(dpkg, "create", "/etc/cron.daily/chrony", 0)
	c.file(dpkg, "create", "/etc/logrotate.d/chrony", 0)
	post := c.exec(dpkg, "/bin/sh", "/bin/sh", "/var/lib/dpkg/info/chrony.postinst", "configure", "")
	add := c.exec(post, "/usr/sbin/adduser", "adduser", "--system", "--group", "--quiet", "--home", "/var/lib/chrony", "--no-create-home", "_chrony")
	ua := c.exec(add, "/usr/sbin/useradd", "useradd", "-d", "/var/lib/chrony", "-g", "_chrony", "-s", "/usr/sbin/nologin", "-r", "-K", "UID_MIN=100", "_chrony")
	c.file(ua, "rename", "/etc/passwd", 0)
	c.file(ua, "rename", "/etc/shadow", 0)
	h := c.exec(post, "/usr/bin/deb-systemd-helper", "deb-systemd-helper", "enable", "chrony.service")
	c.file(h, "create", "/etc/systemd/system/multi-user.target.wants/chrony.service", 0)
	c.exec(post, "/usr/bin/systemctl", "systemctl", "--system", "daemon-reload")
	c.exec(post, "/usr/sbin/invoke-rc.d", "invoke-rc.d", "chrony", "start")
	c.exec(dpkg, "/usr/sbin/ldconfig", "/sbin/ldconfig")
	c.exec(sudo, "/usr/bin/systemctl", "systemctl", "restart", "nginx")
}

// cronLogrotate is cron running the daily jobs, logrotate among them.
func (c *corpus) cronLogrotate(cron *cproc) {
	job := c.exec(cron, "/bin/sh", "/bin/sh", "-c", "test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }")
	rp := c.exec(job, "/usr/bin/run-parts", "run-parts", "--report", "/etc/cron.daily")
	lsh := c.exec(rp, "/bin/sh", "/bin/sh", "/etc/cron.daily/logrotate")
	lr := c.exec(lsh, "/usr/sbin/logrotate", "/usr/sbin/logrotate", "/etc/logrotate.conf")
	c.file(lr, "rename", "/var/log/syslog.1", 0)
	c.file(lr, "delete", "/var/log/syslog.7.gz", 0)
	c.exec(lr, "/usr/bin/gzip", "gzip", "-9", "/var/log/syslog.2")
	c.exec(lr, "/bin/sh", "sh", "-c", "/usr/lib/rsyslog/rsyslog-rotate")
	c.exec(lr, "/usr/bin/rm", "rm", "-f", "/var/log/nginx/access.log.14.gz")
	c.exec(lr, "/usr/bin/systemctl", "systemctl", "kill", "-s", "HUP", "rsyslog.service")
	c.exec(rp, "/etc/cron.daily/apt-compat", "/etc/cron.daily/apt-compat")
	c.exec(rp, "/etc/cron.daily/man-db", "/etc/cron.daily/man-db")
	c.exec(rp, "/etc/cron.daily/dpkg", "/etc/cron.daily/dpkg")
	ap := c.exec(job, "/usr/bin/apt-get", "apt-get", "-qq", "update")
	c.connect(ap, "tcp", "151.101.2.132:80")
}

// services is systemd starting the daemons of a web host, and their normal work.
func (c *corpus) services() (sshd, cron *cproc) {
	sshd = c.exec(systemd, "/usr/sbin/sshd", "sshd", "-D")
	cron = c.exec(systemd, "/usr/sbin/cron", "/usr/sbin/cron", "-f", "-P")
	nginx := c.exec(systemd, "/usr/sbin/nginx", "nginx", "-g", "daemon on; master_process on;")
	c.file(nginx, "write", "/var/log/nginx/access.log", 0)
	c.exec(systemd, "/usr/sbin/nginx", "nginx", "-t", "-q")
	apache := c.exec(systemd, "/usr/sbin/apache2", "/usr/sbin/apache2", "-k", "start")
	c.exec(apache, "/bin/sh", "/bin/sh", "-c", "/usr/bin/rotatelogs /var/log/apache2/access.%Y%m%d 86400")
	fpm := c.exec(systemd, "/usr/sbin/php-fpm8.2", "php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)")
	c.exec(fpm, "/bin/sh", "sh", "-c", "/usr/sbin/sendmail -t -i")
	c.connect(fpm, "tcp", "127.0.0.1:6379")
	c.connect(fpm, "tcp", "10.0.0.9:3306")
	pg := c.execAs(systemd, 111, 111, "", "/usr/lib/postgresql/15/bin/postgres", "/usr/lib/postgresql/15/bin/postgres", "-D", "/var/lib/postgresql/15/main")
	arch := &cproc{p: pg.p, ancs: pg.ancs}
	arch.p.Args = []string{"postgres: 15/main: archiver"}
	c.exec(arch, "/bin/sh", "sh", "-c", "test ! -f /archive/000000010000000000000042 && cp pg_wal/000000010000000000000042 /archive/000000010000000000000042")
	dockerd := c.exec(systemd, "/usr/bin/dockerd", "/usr/bin/dockerd", "-H", "fd://", "--containerd=/run/containerd/containerd.sock")
	c.exec(dockerd, "/usr/sbin/iptables-nft", "/usr/sbin/iptables", "--wait", "-t", "nat", "-F", "DOCKER")
	c.exec(dockerd, "/usr/sbin/iptables-nft", "/usr/sbin/iptables", "--wait", "-t", "filter", "-F", "DOCKER-ISOLATION-STAGE-1")
	c.exec(systemd, "/usr/bin/systemd-tmpfiles", "systemd-tmpfiles", "--clean")
	ch := c.execAs(systemd, 0, 0, "", "/usr/sbin/chronyd", "/usr/sbin/chronyd", "-F", "1")
	c.connect(ch, "udp", "162.159.200.1:123")
	node := c.execAs(systemd, 1001, 1001, "", "/usr/bin/node", "node", "/srv/app/server.js")
	c.connect(node, "tcp", "127.0.0.1:6379")
	c.connect(node, "tcp", "203.0.113.200:443")
	return sshd, cron
}

// login is an ssh login with a terminal, an interactive session and legitimate sudo.
func (c *corpus) login(sshd *cproc) *cproc {
	priv := c.exec(sshd, "/usr/sbin/sshd", "sshd: alice [priv]")
	user := c.execAs(priv, 1000, 1000, "", "/usr/sbin/sshd", "sshd: alice@pts/0")
	sh := c.execAs(user, 1000, 1000, "pts/0", "/usr/bin/bash", "-bash")
	sh.p.AUID = 1000
	sh.p.Cwd = "/home/alice"
	for _, cmd := range [][]string{
		{"/usr/bin/ls", "ls", "--color=auto", "-la"}, {"/usr/bin/cat", "cat", "/etc/os-release"}, {"/usr/bin/ps", "ps", "aux"},
		{"/usr/bin/less", "less", "/var/log/syslog"}, {"/usr/bin/ssh", "ssh", "git@git.example.org"}, {"/usr/bin/tail", "tail", "-f", "/var/log/nginx/error.log"},
		{"/usr/bin/grep", "grep", "-r", "TODO", "."}, {"/usr/bin/crontab", "crontab", "-l"}, {"/usr/bin/journalctl", "journalctl", "-u", "nginx", "--since", "today"},
		{"/usr/bin/curl", "curl", "-fsSL", "https://example.org/api/health"}, {"/usr/bin/python3.11", "python3", "-m", "venv", ".venv"},
	} {
		p := c.exec(sh, cmd[0], cmd[1:]...)
		if cmd[1] == "ssh" || cmd[1] == "curl" {
			c.connect(p, "tcp", "198.51.100.40:443")
		}
	}
	c.file(sh, "write", "/home/alice/.bash_history", 0)
	vim := c.exec(sh, "/usr/bin/vim.basic", "vim", ".bashrc")
	vim.p.Exe = "/usr/bin/vim"
	c.file(vim, "rename", "/home/alice/.bashrc", 0)
	sudo := c.execAs(sh, 1000, 0, "pts/0", "/usr/bin/sudo", "sudo", "-i")
	root := c.execAs(sudo, 0, 0, "pts/0", "/usr/bin/bash", "-bash")
	c.exec(root, "/usr/bin/systemctl", "systemctl", "status", "nginx")
	c.exec(root, "/usr/sbin/iptables-nft", "iptables", "-L", "-n")
	c.exec(sh, "/usr/bin/passwd", "passwd")
	c.execAs(sh, 1000, 0, "pts/0", "/usr/bin/passwd", "passwd")
	c.execAs(sh, 1000, 0, "pts/0", "/usr/bin/ping", "ping", "-c", "1", "10.0.0.1")
	np := c.exec(sh, "/usr/bin/node", "node", "/usr/bin/npm", "install")
	c.exec(np, "/bin/sh", "sh", "-c", "node-gyp rebuild")
	c.connect(np, "tcp", "104.16.0.35:443")
	return sh
}

// benignCorpus is a day on a build and web server compressed into a few thousand events.
func benignCorpus(seed uint64, builds int) []*Event {
	c := newCorpus(seed)
	sshd, cron := c.services()
	for i := 0; i < builds; i++ {
		c.packageBuild(20 + c.rng.IntN(40))
		if i%3 == 0 {
			sh := c.login(sshd)
			c.aptInstall(sh)
			c.goTest(sshd)
		}
		if i%5 == 0 {
			c.cronLogrotate(cron)
		}
	}
	return c.events
}
