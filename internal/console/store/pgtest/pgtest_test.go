package pgtest_test

import (
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/palisade-cwpp/palisade/internal/console/store/pgtest"
)

func TestMain(m *testing.M) {
	if os.Getenv(orphanEnv) != "" {
		orphanChild()
		return
	}
	code := m.Run()
	if err := pgtest.StopShared(); err != nil {
		fmt.Fprintln(os.Stderr, "StopShared:", err)
		code = 1
	}
	os.Exit(code)
}

func open(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestStartCreateQueryStop(t *testing.T) {
	srv := pgtest.Require(t)
	t.Logf("Start took %v (bin %s, port %d, dir %s)", srv.StartupTime, srv.BinDir, srv.Port, srv.Dir)

	want := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", srv.Port)
	if srv.DSN != want {
		t.Errorf("DSN = %q, want %q", srv.DSN, want)
	}
	if _, err := os.Stat(filepath.Join(srv.SocketDir, ".s.PGSQL."+strconv.Itoa(srv.Port))); err != nil {
		t.Errorf("unix socket: %v", err)
	}

	var version string
	if err := open(t, srv.DSN).QueryRow("SHOW server_version").Scan(&version); err != nil {
		t.Fatalf("query postgres db: %v\n%s", err, srv.Log())
	}
	t.Logf("server_version %s", version)
	for setting, want := range map[string]string{"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "listen_addresses": "127.0.0.1"} {
		var got string
		if err := open(t, srv.DSN).QueryRow("SELECT current_setting($1)", setting).Scan(&got); err != nil || got != want {
			t.Errorf("%s = %q (%v), want %q", setting, got, err, want)
		}
	}

	names := []string{"alpha", `we"ird db`}
	dbs := make([]*sql.DB, len(names))
	for i, name := range names {
		began := time.Now()
		dsn, err := srv.CreateDatabase(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("CreateDatabase(%q) = %s in %v", name, dsn, time.Since(began))
		dbs[i] = open(t, dsn)
		var cur string
		if err := dbs[i].QueryRow("SELECT current_database()").Scan(&cur); err != nil {
			t.Fatal(err)
		}
		if cur != name {
			t.Errorf("current_database() = %q, want %q", cur, name)
		}
	}

	// The databases are independent.
	if _, err := dbs[0].Exec("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'one'), (2, 'two')"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := dbs[0].QueryRow("SELECT count(*) FROM t WHERE v <> $1", "zero").Scan(&n); err != nil || n != 2 {
		t.Errorf("count = %d, %v; want 2", n, err)
	}
	if err := dbs[1].QueryRow("SELECT count(*) FROM t").Scan(&n); err == nil {
		t.Error("table t visible in the second database")
	}

	// Duplicate names fail with the server's error.
	_, err := srv.CreateDatabase("alpha")
	var pgErr *pgtest.PGError
	if !errors.As(err, &pgErr) || pgErr.Code != "42P04" {
		t.Errorf("duplicate CreateDatabase: err = %v, want SQLSTATE 42P04", err)
	}
	// Generated names.
	if dsn, err := srv.CreateDatabase(""); err != nil || !strings.Contains(dsn, "/test_") {
		t.Errorf("CreateDatabase(\"\") = %q, %v", dsn, err)
	}

	for _, db := range dbs {
		db.Close()
	}
	began := time.Now()
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Stop took %v", time.Since(began))
	if _, err := os.Stat(srv.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp dir %s still there after Stop: %v", srv.Dir, err)
	}
	if c, err := net.DialTimeout("tcp", net.JoinHostPort(srv.Host, strconv.Itoa(srv.Port)), time.Second); err == nil {
		c.Close()
		t.Errorf("port %d still accepts connections after Stop", srv.Port)
	}
	if err := srv.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := srv.CreateDatabase("late"); err == nil {
		t.Error("CreateDatabase after Stop succeeded")
	}
}

func TestSharedAndRequireDatabase(t *testing.T) {
	a := pgtest.RequireShared(t)
	b, err := pgtest.Shared()
	if err != nil || a != b {
		t.Fatalf("Shared() = %p, %v; want %p", b, err, a)
	}
	for i := 0; i < 2; i++ {
		t.Run("db", func(t *testing.T) {
			t.Parallel()
			db := open(t, pgtest.RequireDatabase(t))
			if _, err := db.Exec("CREATE TABLE only_mine (x int)"); err != nil {
				t.Fatal(err) // would collide if the databases were shared
			}
		})
	}
}

func TestUnavailable(t *testing.T) {
	t.Setenv(pgtest.EnvBinDir, t.TempDir())
	srv, err := pgtest.Start()
	if !errors.Is(err, pgtest.ErrUnavailable) {
		srv.Stop()
		t.Fatalf("Start with empty %s: err = %v, want ErrUnavailable", pgtest.EnvBinDir, err)
	}
	t.Log(err)
}

const orphanEnv = "PGTEST_ORPHAN_CHILD"

// orphanChild starts a server, reports its postmaster pid and data dir, and
// waits to be killed.
func orphanChild() {
	srv, err := pgtest.Start()
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	b, err := os.ReadFile(filepath.Join(srv.DataDir, "postmaster.pid"))
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	pid, _, _ := strings.Cut(string(b), "\n")
	fmt.Printf("PID %s %d %s\n", pid, srv.Port, srv.Dir)
	select {}
}

// TestNoOrphanWhenKilled SIGKILLs a process that started a server and checks
// that the postmaster and its backends die too.
func TestNoOrphanWhenKilled(t *testing.T) {
	pgtest.RequireShared(t) // skip/fail like the others when unavailable

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), orphanEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var line string
	buf := make([]byte, 4096)
	for !strings.Contains(line, "\n") {
		n, err := out.Read(buf)
		line += string(buf[:n])
		if err != nil {
			break
		}
	}
	var pid, port int
	var dir string
	if _, err := fmt.Sscanf(line, "PID %d %d %s", &pid, &port, &dir); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child said %q: %v", line, err)
	}
	if !processAlive(pid) {
		t.Fatalf("postmaster %d not running", pid)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	deadline := time.Now().Add(10 * time.Second)
	for processAlive(pid) || len(children(pid)) > 0 {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("postmaster %d (or its backends %v) survived its parent", pid, children(pid))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second); err == nil {
		c.Close()
		t.Errorf("port %d still open", port)
	}
	// The dead run's directory is cleaned up by a later Start.
	time.Sleep(1100 * time.Millisecond)
	srv := pgtest.Require(t)
	srv.Stop()
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale dir %s not removed by later Start: %v", dir, err)
	}
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

// children lists live processes whose parent is ppid.
func children(ppid int) []int {
	var kids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		_, rest, _ := strings.Cut(string(b), ") ")
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == strconv.Itoa(ppid) && f[0] != "Z" {
			kids = append(kids, pid)
		}
	}
	return kids
}
