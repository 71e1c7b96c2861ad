// Package pgtest starts real, throwaway PostgreSQL servers for Go tests.
//
// A server is an initdb'd cluster in a fresh temporary directory (under
// /dev/shm when that is a roomy tmpfs, else os.TempDir(); see EnvTmpDir),
// listening only on 127.0.0.1 (on a free port) and on a unix socket inside
// that directory, with durability switched off (fsync, synchronous_commit
// and full_page_writes are off) and trust authentication for the "postgres"
// superuser. It never touches a system cluster or any other server.
//
// The PostgreSQL binaries (initdb, postgres) are looked up in
// $PALISADE_PG_BIN if set, otherwise in /usr/lib/postgresql/<ver>/bin (the
// newest version wins; this is where Debian's "postgresql" package puts
// them), a few other conventional locations, and finally $PATH. When they
// cannot be found, Start returns an error wrapping ErrUnavailable, so that
// callers can skip; Require and friends do that automatically unless the
// environment variable CI is "true", in which case they fail the test.
//
// PostgreSQL refuses to run as root. When the test process runs as root, the
// server runs as the "postgres" system user (created by the Debian package),
// and the temporary directory is chowned to it; otherwise it runs as the
// current user.
//
// The server process is started with a parent-death signal (SIGKILL) from an
// OS thread that stays alive until the server exits, so if the test binary
// is killed (test timeout, SIGKILL, ^C) the postmaster dies with it and its
// backends follow. The temporary directory of such a killed run is removed
// by a later Start in any process once its owner is gone.
//
// Typical use, one server per test:
//
//	func TestX(t *testing.T) {
//		srv := pgtest.Require(t) // skips (or fails under CI=true) without PostgreSQL
//		dsn, err := srv.CreateDatabase("x")
//		...
//	}
//
// or one server per test binary, one database per test:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		pgtest.StopShared()
//		os.Exit(code)
//	}
//
//	func TestY(t *testing.T) {
//		dsn := pgtest.RequireDatabase(t) // fresh database on the shared server
//		...
//	}
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ErrUnavailable is wrapped by the error Start returns when PostgreSQL cannot
// be run on this machine at all (binaries not installed, no unprivileged
// user to run them as, unsupported platform). Other failures are returned
// as ordinary errors.
var ErrUnavailable = errors.New("pgtest: PostgreSQL unavailable")

// EnvBinDir names the environment variable that overrides the directory
// holding the PostgreSQL server binaries.
const EnvBinDir = "PALISADE_PG_BIN"

// EnvTmpDir names the environment variable that overrides where the
// temporary cluster directories are created. By default they go to /dev/shm
// when it is a tmpfs with at least 2 GiB free (initdb and CREATE DATABASE
// are several times faster there than on a slow disk; a cluster needs
// ~40 MB plus ~8 MB per database), else to os.TempDir().
const EnvTmpDir = "PALISADE_PG_TMPDIR"

// StartTimeout bounds how long Start waits for the server to accept
// connections.
const StartTimeout = 30 * time.Second

const (
	superuser  = "postgres"
	host       = "127.0.0.1"
	dirPrefix  = "pgtest-"
	ownerFile  = "owner.pid"
	logFile    = "postgres.log"
	dataSubdir = "data"
)

// Server is a running throwaway PostgreSQL instance.
type Server struct {
	// DSN connects to the "postgres" database as the superuser "postgres":
	// postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable
	DSN string
	// Host is always 127.0.0.1; Port is the TCP port the server listens on.
	Host string
	Port int
	// User is the superuser name ("postgres"); no password is needed.
	User string
	// Dir is the temporary directory holding everything; it is removed by
	// Stop. DataDir is the cluster (Dir/data); SocketDir (= Dir) holds the
	// unix socket .s.PGSQL.<Port>.
	Dir       string
	DataDir   string
	SocketDir string
	// BinDir is the directory the binaries were taken from; Major is the
	// server's major version (e.g. 15).
	BinDir string
	Major  int
	// StartupTime is how long Start took (initdb + server start + first
	// successful connection).
	StartupTime time.Duration

	proc     *proc
	logPath  string
	dbSeq    atomic.Int64
	stopOnce sync.Once
	stopErr  error
	stopped  atomic.Bool
}

// Start finds the binaries, initdb's a cluster in a new temporary directory,
// starts a server on it and waits (up to StartTimeout) until it accepts
// connections. The caller must call Stop. If PostgreSQL is not available
// the error wraps ErrUnavailable.
func Start() (*Server, error) {
	began := time.Now()
	if err := platformSupported(); err != nil {
		return nil, err
	}
	binDir, err := findBinDir()
	if err != nil {
		return nil, err
	}
	owner, err := lookupRunAs()
	if err != nil {
		return nil, err
	}
	removeStaleDirs()

	dir, err := os.MkdirTemp(tmpRoot(), dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s := &Server{
		Host:      host,
		User:      superuser,
		Dir:       dir,
		DataDir:   filepath.Join(dir, dataSubdir),
		SocketDir: dir,
		BinDir:    binDir,
		logPath:   filepath.Join(dir, logFile),
	}
	fail := func(err error) (*Server, error) {
		_ = s.Stop()
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fail(fmt.Errorf("pgtest: %w", err))
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fail(fmt.Errorf("pgtest: %w", err))
	}
	if owner != nil {
		if err := os.Chown(dir, owner.uid, owner.gid); err != nil {
			return fail(fmt.Errorf("pgtest: chown %s to %s: %w", dir, owner.name, err))
		}
	}

	if err := s.initdb(owner); err != nil {
		return fail(err)
	}
	if b, err := os.ReadFile(filepath.Join(s.DataDir, "PG_VERSION")); err == nil {
		s.Major, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}

	// The port is picked by binding :0 and closing it, so another process
	// may grab it before the postmaster does; retry on bind failures.
	const attempts = 5
	for i := 1; ; i++ {
		err := s.startServer(owner)
		if err == nil {
			break
		}
		if i < attempts && errors.Is(err, errAddrInUse) {
			continue
		}
		return fail(err)
	}
	s.DSN = s.DSNFor("postgres")
	s.StartupTime = time.Since(began)
	return s, nil
}

func (s *Server) initdb(owner *runAs) error {
	cmd := exec.Command(filepath.Join(s.BinDir, "initdb"),
		"-D", s.DataDir,
		"-U", superuser,
		"-A", "trust",
		"-E", "UTF8",
		"--no-locale",
		"--no-sync",
	)
	cmd.Dir = s.Dir
	cmd.Env = cleanEnv()
	var out strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = &out
	prepareCmd(cmd, owner)
	p, err := startProc(cmd)
	if err != nil {
		return fmt.Errorf("pgtest: start initdb: %w", err)
	}
	<-p.exited
	if p.err != nil {
		return fmt.Errorf("pgtest: initdb: %v\n%s", p.err, out.String())
	}
	return nil
}

var errAddrInUse = errors.New("address already in use")

func (s *Server) startServer(owner *runAs) error {
	port, err := freePort()
	if err != nil {
		return fmt.Errorf("pgtest: pick a free port: %w", err)
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer logf.Close() // the child keeps its own descriptor

	cmd := exec.Command(filepath.Join(s.BinDir, "postgres"),
		"-D", s.DataDir,
		"-p", strconv.Itoa(port),
		"-k", s.SocketDir,
		"-c", "listen_addresses="+host,
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		// Keep dynamic shared memory inside the data directory rather than
		// in /dev/shm (small in containers, and leaks if we are killed).
		"-c", "dynamic_shared_memory_type=mmap",
		"-c", "logging_collector=off",
		"-c", "wal_init_zero=off",
	)
	cmd.Dir = s.Dir
	cmd.Env = cleanEnv()
	cmd.Stdout = logf
	cmd.Stderr = logf
	prepareCmd(cmd, owner)
	p, err := startProc(cmd)
	if err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	s.proc = p
	s.Port = port

	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	for {
		select {
		case <-p.exited:
			log := s.logTail()
			s.proc = nil
			if strings.Contains(log, "could not bind") || strings.Contains(log, "already in use") {
				return fmt.Errorf("pgtest: postgres on port %d: %w\n%s", port, errAddrInUse, log)
			}
			return fmt.Errorf("pgtest: postgres exited during startup (%v):\n%s", p.err, log)
		default:
		}
		qctx, qcancel := context.WithTimeout(ctx, 2*time.Second)
		err := simpleQuery(qctx, addr, superuser, "postgres", "SELECT 1")
		qcancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("pgtest: postgres did not accept connections within %v (last error: %v):\n%s",
				StartTimeout, err, s.logTail())
		}
		select {
		case <-p.exited:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// logTail returns the last few KB of the server log.
func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	const max = 4096
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// Log returns the server's log output so far (handy in failure messages).
func (s *Server) Log() string { return s.logTail() }

// DSNFor returns the DSN of database name on this server.
func (s *Server) DSNFor(name string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(s.User),
		Host:     net.JoinHostPort(s.Host, strconv.Itoa(s.Port)),
		Path:     "/" + name,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Exec runs sql (one or more statements, simple query protocol, no results)
// as the superuser against database. It needs no driver.
func (s *Server) Exec(database, sql string) error {
	if s.stopped.Load() {
		return errors.New("pgtest: server stopped")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return simpleQuery(ctx, net.JoinHostPort(s.Host, strconv.Itoa(s.Port)), s.User, database, sql)
}

// CreateDatabase creates database name (any string; it is quoted) and
// returns its DSN. An empty name picks a fresh one ("test_1", "test_2", ...).
func (s *Server) CreateDatabase(name string) (dsn string, err error) {
	if name == "" {
		name = "test_" + strconv.FormatInt(s.dbSeq.Add(1), 10)
	}
	sql := "CREATE DATABASE " + quoteIdent(name)
	if s.Major >= 15 {
		// Copying the template's files (with fsync off) is several times
		// faster than the default WAL_LOG strategy for a small template.
		sql += " STRATEGY = FILE_COPY"
	}
	if err := s.Exec("postgres", sql); err != nil {
		return "", fmt.Errorf("pgtest: create database %q: %w", name, err)
	}
	return s.DSNFor(name), nil
}

// DropDatabase drops database name, terminating its connections.
func (s *Server) DropDatabase(name string) error {
	if err := s.Exec("postgres", "DROP DATABASE IF EXISTS "+quoteIdent(name)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("pgtest: drop database %q: %w", name, err)
	}
	return nil
}

// Stop shuts the server down the way "pg_ctl stop -m immediate" does
// (SIGQUIT to the postmaster, which takes its backends down, escalating to
// SIGKILL after 10s), waits for it to exit, and removes the temporary
// directory. It is idempotent and safe on a nil *Server.
func (s *Server) Stop() error {
	if s == nil {
		return nil
	}
	s.stopOnce.Do(func() {
		s.stopped.Store(true)
		var errs []error
		if p := s.proc; p != nil {
			if err := p.stop(10 * time.Second); err != nil {
				errs = append(errs, err)
			}
		}
		if s.Dir != "" {
			if err := os.RemoveAll(s.Dir); err != nil {
				errs = append(errs, fmt.Errorf("pgtest: %w", err))
			}
		}
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}

// Require starts a server for tb and registers tb.Cleanup to stop it. If
// PostgreSQL is unavailable it skips tb, or fails it when CI=true.
func Require(tb testing.TB) *Server {
	tb.Helper()
	s, err := Start()
	if err != nil {
		skipOrFatal(tb, err)
	}
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Errorf("pgtest: stop: %v", err)
		}
	})
	return s
}

func skipOrFatal(tb testing.TB, err error) {
	tb.Helper()
	if errors.Is(err, ErrUnavailable) && os.Getenv("CI") != "true" {
		tb.Skip(err.Error())
	}
	tb.Fatal(err)
}

var shared struct {
	mu  sync.Mutex
	srv *Server
	err error
}

// Shared returns a server shared by the whole process, starting it on first
// use. A failure (including ErrUnavailable) is remembered and returned again.
// The server lives until StopShared: a TestMain using it should call
// StopShared after m.Run (without that, the server still dies with the
// process, but its temporary directory is left for a later Start to remove).
func Shared() (*Server, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv == nil && shared.err == nil {
		shared.srv, shared.err = Start()
	}
	return shared.srv, shared.err
}

// StopShared stops the server started by Shared, if any. A later Shared
// starts a new one.
func StopShared() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	s := shared.srv
	shared.srv, shared.err = nil, nil
	return s.Stop()
}

// RequireShared is Shared with Require's skip/fail behaviour. It does not
// stop the server; see StopShared.
func RequireShared(tb testing.TB) *Server {
	tb.Helper()
	s, err := Shared()
	if err != nil {
		skipOrFatal(tb, err)
	}
	return s
}

var uniqueDB atomic.Int64

// RequireDatabase creates a fresh database on the shared server (see
// RequireShared), drops it in tb.Cleanup, and returns its DSN.
func RequireDatabase(tb testing.TB) string {
	tb.Helper()
	s := RequireShared(tb)
	name := fmt.Sprintf("t%d_%s", uniqueDB.Add(1), sanitize(tb.Name()))
	dsn, err := s.CreateDatabase(name)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if s.stopped.Load() {
			return
		}
		if err := s.DropDatabase(name); err != nil {
			tb.Logf("pgtest: %v", err)
		}
	})
	return dsn
}

var nonIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// sanitize turns a test name into a readable identifier fragment that keeps
// the whole name within PostgreSQL's 63-byte limit.
func sanitize(s string) string {
	s = nonIdent.ReplaceAllString(strings.ToLower(s), "_")
	if len(s) > 40 {
		s = s[:40]
	}
	return s
}

func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

func tmpRoot() string {
	if d := os.Getenv(EnvTmpDir); d != "" {
		return d
	}
	if d := fastTmpRoot(); d != "" {
		return d
	}
	return os.TempDir()
}

// cleanEnv is the environment minus PG* variables, which would otherwise
// steer initdb/postgres (PGDATA, PGPORT, PGOPTIONS, ...).
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// findBinDir locates a directory holding initdb and postgres.
func findBinDir() (string, error) {
	has := func(dir string) bool {
		for _, name := range []string{"initdb", "postgres"} {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
				return false
			}
		}
		return true
	}
	if dir := os.Getenv(EnvBinDir); dir != "" {
		if has(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("%w: %s=%s does not contain initdb and postgres", ErrUnavailable, EnvBinDir, dir)
	}
	var candidates []string
	for _, pattern := range []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin"} {
		m, _ := filepath.Glob(pattern)
		sortByVersionDesc(m)
		candidates = append(candidates, m...)
	}
	candidates = append(candidates, "/usr/local/pgsql/bin", "/opt/homebrew/bin", "/usr/local/bin")
	if p, err := exec.LookPath("initdb"); err == nil {
		candidates = append(candidates, filepath.Dir(p))
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		candidates = append(candidates, filepath.Dir(p))
	}
	for _, dir := range candidates {
		if has(dir) {
			return dir, nil
		}
	}
	return "", fmt.Errorf("%w: initdb/postgres not found in /usr/lib/postgresql/*/bin or $PATH "+
		"(install PostgreSQL, e.g. apt-get install postgresql, or set %s)", ErrUnavailable, EnvBinDir)
}

var versionRE = regexp.MustCompile(`\d+(\.\d+)?`)

// sortByVersionDesc orders paths like /usr/lib/postgresql/15/bin newest first.
func sortByVersionDesc(paths []string) {
	ver := func(p string) float64 {
		v, _ := strconv.ParseFloat(versionRE.FindString(p), 64)
		return v
	}
	sort.SliceStable(paths, func(i, j int) bool { return ver(paths[i]) > ver(paths[j]) })
}

// proc is a child process whose start and wait happen on one locked OS
// thread: the kernel delivers the parent-death signal when the *thread*
// that forked the child exits, and an arbitrary Go thread can exit (the
// runtime destroys a thread whose locked goroutine returns), so the forking
// thread must be one we own that lives as long as the child.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // Wait's result, valid once exited is closed
}

func startProc(cmd *exec.Cmd) (*proc, error) {
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Never unlocked: when this goroutine returns the thread is
		// destroyed, which is fine because the child is gone by then.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// stop sends the immediate-shutdown signal, escalating to a kill after
// grace, and waits for the process to exit.
func (p *proc) stop(grace time.Duration) error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	_ = signalQuit(p.cmd.Process)
	select {
	case <-p.exited:
		return nil
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.exited:
		return nil
	case <-time.After(grace):
		return fmt.Errorf("pgtest: postgres (pid %d) did not exit", p.cmd.Process.Pid)
	}
}
