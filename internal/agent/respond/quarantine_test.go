package respond

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// eicar is the standard anti-virus test file, assembled so that this source is not flagged.
var eicar = []byte(`X5O!P%@AP[4\PZX54(P^)7CC)7}$` + `EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`)

func TestQuarantineIsolateAndRestoreExactly(t *testing.T) {
	q, err := OpenQuarantine(filepath.Join(t.TempDir(), "q"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "dropper.sh")
	if err := os.WriteFile(path, eicar, 0o4755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o4755)
	mtime := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	os.Chtimes(path, mtime, mtime)
	os.Chown(path, 1234, 5678)
	sum := sha256.Sum256(eicar)

	item, err := q.Isolate(path, hex.EncodeToString(sum[:]), "EICAR test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("original still there: %v", err)
	}
	blob, _ := os.ReadFile(filepath.Join(q.dir, item.ID+".bin"))
	if bytes.Contains(blob, []byte("EICAR-STANDARD")) {
		t.Fatal("quarantined copy is recognisable")
	}
	if fi, _ := os.Stat(filepath.Join(q.dir, item.ID+".bin")); fi.Mode().Perm()&0o111 != 0 {
		t.Fatal("quarantined copy is executable")
	}
	if items, _ := q.List(); len(items) != 1 || items[0].Hashes["sha256"] != hex.EncodeToString(sum[:]) || items[0].Path != path {
		t.Fatalf("list: %+v", items)
	}

	if _, err := q.Restore(item.ID); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	fi, _ := os.Stat(path)
	if err != nil || !bytes.Equal(got, eicar) || fi.Mode() != item.Mode || !fi.ModTime().Equal(mtime) {
		t.Fatalf("restored: %q mode %v mtime %v (%v)", got, fi.Mode(), fi.ModTime(), err)
	}
	if os.Geteuid() == 0 {
		if uid, gid := owner(fi); uid != 1234 || gid != 5678 {
			t.Errorf("owner %d:%d, want 1234:5678", uid, gid)
		}
	}
	if items, _ := q.List(); len(items) != 0 {
		t.Errorf("item still listed after restore: %+v", items)
	}
}

func TestQuarantineRefusals(t *testing.T) {
	q, err := OpenQuarantine(filepath.Join(t.TempDir(), "q"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, []byte("content"), 0o644)
	link := filepath.Join(dir, "link")
	os.Symlink(file, link)
	for _, tt := range []struct {
		name, path, sha, want string
	}{
		{"relative path", "f", "", "absolute"},
		{"symlink", link, "", "symbolic link"},
		{"directory", dir, "", "not a regular file"},
		{"changed since flagged", file, strings.Repeat("0", 64), "changed since"},
		{"missing", filepath.Join(dir, "nope"), "", "no such file"},
		{"the store itself", filepath.Join(q.dir, "key"), "", "quarantine store"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := q.Isolate(tt.path, tt.sha, ""); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatal("a refused file must stay where it was")
	}
	if items, _ := q.List(); len(items) != 0 {
		t.Errorf("refusals left items: %+v", items)
	}
}

func TestQuarantineRestoreChecks(t *testing.T) {
	q, _ := OpenQuarantine(filepath.Join(t.TempDir(), "q"))
	dir := t.TempDir()
	path := filepath.Join(dir, "x")
	os.WriteFile(path, []byte("payload"), 0o600)
	item, err := q.Isolate(path, "", "")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, []byte("new file"), 0o600)
	if _, err := q.Restore(item.ID); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("restore over an existing file: %v", err)
	}
	os.Remove(path)
	blob := filepath.Join(q.dir, item.ID+".bin")
	b, _ := os.ReadFile(blob)
	b[20] ^= 1
	os.WriteFile(blob, b, 0o600)
	if _, err := q.Restore(item.ID); err == nil || !strings.Contains(err.Error(), "integrity") {
		t.Fatalf("restore of a tampered copy: %v", err)
	}
	if _, err := q.Get("../../etc/passwd"); err == nil {
		t.Fatal("malformed IDs must be refused")
	}
	if err := q.Delete(item.ID); err != nil {
		t.Fatal(err)
	}
}

// Two tasks opening a new store at once must end up with one key, or one of the files they
// isolate could never be restored.
func TestQuarantineConcurrentFirstOpenSharesOneKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	files := t.TempDir()
	const n = 8
	ids := make(chan string, n)
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			q, err := OpenQuarantine(dir)
			if err != nil {
				errs <- err
				return
			}
			p := filepath.Join(files, fmt.Sprintf("f%d", i))
			os.WriteFile(p, []byte(fmt.Sprintf("payload %d", i)), 0o600)
			item, err := q.Isolate(p, "", "")
			if err != nil {
				errs <- err
				return
			}
			ids <- item.ID
		}()
	}
	q, _ := OpenQuarantine(dir)
	for i := 0; i < n; i++ {
		select {
		case err := <-errs:
			t.Fatal(err)
		case id := <-ids:
			if _, err := q.Restore(id); err != nil {
				t.Fatalf("restore %s: %v", id, err)
			}
		}
	}
}
