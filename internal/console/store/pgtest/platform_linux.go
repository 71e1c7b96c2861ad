//go:build linux

package pgtest

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func platformSupported() error { return nil }

// runAs is the unprivileged account the server runs as when we are root.
type runAs struct {
	name     string
	uid, gid int
}

// lookupRunAs returns nil when not running as root (the server then runs as
// the current user), else the "postgres" system user.
func lookupRunAs() (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(superuser)
	if err != nil {
		return nil, fmt.Errorf("%w: running as root and no %q system user to run the server as: %v",
			ErrUnavailable, superuser, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("pgtest: bad uid/gid %q/%q for user %q", u.Uid, u.Gid, superuser)
	}
	return &runAs{name: superuser, uid: uid, gid: gid}, nil
}

// prepareCmd runs cmd as owner (if any) and makes the kernel SIGKILL it
// when the thread that starts it exits. Go applies the credentials before
// the parent-death signal (a credential change would reset it).
func prepareCmd(cmd *exec.Cmd, owner *runAs) {
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if owner != nil {
		attr.Credential = &syscall.Credential{
			Uid:    uint32(owner.uid),
			Gid:    uint32(owner.gid),
			Groups: []uint32{}, // drop root's supplementary groups
		}
	}
	cmd.SysProcAttr = attr
}

func signalQuit(p *os.Process) error { return p.Signal(syscall.SIGQUIT) }

// alive reports whether pid exists (EPERM means it exists but is not ours)
// and is not a zombie (an orphaned postmaster is a zombie until init, which
// in some containers is slow or absent, reaps it).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && err != syscall.EPERM {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
}

// removeStaleDirs deletes temporary directories left behind by test
// processes that died without calling Stop: those whose owner process is
// gone and whose postmaster (if the pid file survives) is gone too.
// Directories without an owner file (being created right now) are left.
func removeStaleDirs() {
	var dirs []string
	for _, root := range []string{os.Getenv(EnvTmpDir), shmDir, os.TempDir()} {
		if root != "" {
			m, _ := filepath.Glob(filepath.Join(root, dirPrefix+"*"))
			dirs = append(dirs, m...)
		}
	}
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		owner, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || alive(owner) {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(dir, dataSubdir, "postmaster.pid")); err == nil {
			line, _, _ := strings.Cut(string(b), "\n")
			if pm, err := strconv.Atoi(strings.TrimSpace(line)); err == nil && alive(pm) {
				continue
			}
		}
		// The owner may have died a moment ago; give a postmaster that is
		// still going down (pid file already gone) time to finish.
		if fi, err := os.Stat(dir); err == nil && time.Since(fi.ModTime()) < time.Second {
			continue
		}
		_ = os.RemoveAll(dir)
	}
}

const shmDir = "/dev/shm"

// fastTmpRoot returns /dev/shm if it is a writable tmpfs with at least
// 2 GiB available (Docker's default 64 MB /dev/shm is too small), else "".
func fastTmpRoot() string {
	const tmpfsMagic = 0x01021994
	var st syscall.Statfs_t
	if err := syscall.Statfs(shmDir, &st); err != nil || st.Type != tmpfsMagic {
		return ""
	}
	if uint64(st.Bavail)*uint64(st.Bsize) < 2<<30 {
		return ""
	}
	if syscall.Access(shmDir, 2 /* W_OK */) != nil {
		return ""
	}
	return shmDir
}
