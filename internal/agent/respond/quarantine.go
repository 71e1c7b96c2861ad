package respond

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Quarantine isolates files: it moves them into a protected store where they are encrypted
// (so no scanner, loader or user recognises or runs them), records where they came from, and
// can put them back exactly. Only regular files are taken, never through a symlink.
type Quarantine struct {
	dir string
	key []byte // 32 bytes AES-256 + 32 bytes HMAC key
}

// QuarantineItem describes an isolated file.
type QuarantineItem struct {
	ID            string            `json:"id"`
	Path          string            `json:"path"`
	Size          int64             `json:"size"`
	Mode          os.FileMode       `json:"mode"`
	UID           int               `json:"uid"`
	GID           int               `json:"gid"`
	ModTime       time.Time         `json:"mod_time"`
	Hashes        map[string]string `json:"hashes"`
	Reason        string            `json:"reason,omitempty"`
	QuarantinedAt time.Time         `json:"quarantined_at"`
}

// ErrHashMismatch means the file changed since it was flagged: it is left alone.
var ErrHashMismatch = errors.New("file changed since it was flagged (SHA-256 differs); not quarantined")

const quarantineKeyFile = "key"

// OpenQuarantine opens (creating if needed) the store in dir.
func OpenQuarantine(dir string) (*Quarantine, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("quarantine directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("quarantine directory: %w", err)
	}
	kp := filepath.Join(dir, quarantineKeyFile)
	key, err := os.ReadFile(kp)
	if errors.Is(err, os.ErrNotExist) {
		key = make([]byte, 64)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		// Written whole to a temporary file, then linked into place: the key appears complete
		// or not at all, and if another opener made one first, theirs is used.
		tmp, err := os.CreateTemp(dir, ".key-*")
		if err != nil {
			return nil, fmt.Errorf("quarantine key: %w", err)
		}
		_, werr := tmp.Write(key)
		if cerr := tmp.Close(); werr == nil {
			werr = cerr
		}
		if werr == nil {
			werr = os.Link(tmp.Name(), kp)
		}
		os.Remove(tmp.Name())
		if errors.Is(werr, os.ErrExist) {
			return OpenQuarantine(dir)
		}
		if werr != nil {
			return nil, fmt.Errorf("quarantine key: %w", werr)
		}
	} else if err != nil {
		return nil, fmt.Errorf("quarantine key: %w", err)
	}
	if len(key) != 64 {
		return nil, fmt.Errorf("quarantine key %s: want 64 bytes, got %d", kp, len(key))
	}
	return &Quarantine{dir: dir, key: key}, nil
}

// Isolate moves the regular file at path into the store. When wantSHA256 is not empty the
// file must still have that hash. The original is removed only after the encrypted copy and
// its record are safely on disk.
func (q *Quarantine) Isolate(path, wantSHA256, reason string) (QuarantineItem, error) {
	path = filepath.Clean(path)
	if !filepath.IsAbs(path) {
		return QuarantineItem{}, fmt.Errorf("quarantine %q: path must be absolute", path)
	}
	if strings.HasPrefix(path+"/", q.dir+"/") {
		return QuarantineItem{}, errors.New("refusing to quarantine the quarantine store")
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return QuarantineItem{}, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return QuarantineItem{}, err
	}
	if !fi.Mode().IsRegular() {
		return QuarantineItem{}, fmt.Errorf("%s is not a regular file", path)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	id := newItemID()
	item := QuarantineItem{ID: id, Path: path, Size: fi.Size(), Mode: fi.Mode(), ModTime: fi.ModTime().UTC(), Reason: reason,
		QuarantinedAt: time.Now().UTC()}
	if st != nil {
		item.UID, item.GID = int(st.Uid), int(st.Gid)
	}
	blob := filepath.Join(q.dir, id+".bin")
	hashes, err := q.encryptTo(blob, f)
	if err != nil {
		os.Remove(blob)
		return QuarantineItem{}, err
	}
	item.Hashes = hashes
	if wantSHA256 != "" && !strings.EqualFold(wantSHA256, hashes["sha256"]) {
		os.Remove(blob)
		return QuarantineItem{}, ErrHashMismatch
	}
	if err := q.writeRecord(item); err != nil {
		os.Remove(blob)
		return QuarantineItem{}, err
	}
	if err := os.Remove(path); err != nil {
		os.Remove(blob)
		os.Remove(q.recordPath(id))
		return QuarantineItem{}, fmt.Errorf("remove original: %w", err)
	}
	return item, nil
}

// encryptTo writes IV || AES-256-CTR(content) || HMAC-SHA256(IV || ciphertext) and returns the
// content's hashes.
func (q *Quarantine) encryptTo(blob string, r io.Reader) (map[string]string, error) {
	out, err := os.OpenFile(blob, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	iv := make([]byte, aes.BlockSize)
	if _, err := rand.Read(iv); err != nil {
		return nil, err
	}
	block, _ := aes.NewCipher(q.key[:32])
	mac := hmac.New(sha256.New, q.key[32:])
	mac.Write(iv)
	if _, err := out.Write(iv); err != nil {
		return nil, err
	}
	hs := map[string]hash.Hash{"md5": md5.New(), "sha1": sha1.New(), "sha256": sha256.New()}
	enc := cipher.StreamWriter{S: cipher.NewCTR(block, iv), W: io.MultiWriter(out, mac)}
	if _, err := io.Copy(io.MultiWriter(enc, hs["md5"], hs["sha1"], hs["sha256"]), r); err != nil {
		return nil, fmt.Errorf("copy into quarantine: %w", err)
	}
	if _, err := out.Write(mac.Sum(nil)); err != nil {
		return nil, err
	}
	if err := out.Sync(); err != nil {
		return nil, err
	}
	sums := map[string]string{}
	for k, h := range hs {
		sums[k] = hex.EncodeToString(h.Sum(nil))
	}
	return sums, nil
}

func (q *Quarantine) recordPath(id string) string { return filepath.Join(q.dir, id+".json") }

func (q *Quarantine) writeRecord(item QuarantineItem) error {
	b, _ := json.MarshalIndent(item, "", "  ")
	tmp := q.recordPath(item.ID) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, q.recordPath(item.ID))
}

// Get returns one item's record.
func (q *Quarantine) Get(id string) (QuarantineItem, error) {
	var item QuarantineItem
	if !validItemID(id) {
		return item, fmt.Errorf("quarantine item %q: malformed ID", id)
	}
	b, err := os.ReadFile(q.recordPath(id))
	if err != nil {
		return item, fmt.Errorf("quarantine item %s: %w", id, err)
	}
	return item, json.Unmarshal(b, &item)
}

// List returns the items, oldest first.
func (q *Quarantine) List() ([]QuarantineItem, error) {
	names, err := filepath.Glob(filepath.Join(q.dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var out []QuarantineItem
	for _, n := range names {
		item, err := q.Get(strings.TrimSuffix(filepath.Base(n), ".json"))
		if err == nil {
			out = append(out, item)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].QuarantinedAt.Before(out[j].QuarantinedAt) })
	return out, nil
}

// Restore puts an item back at its original path with its mode, owner and times, after
// checking that the stored copy is intact. It refuses to overwrite a file that exists there.
func (q *Quarantine) Restore(id string) (QuarantineItem, error) {
	item, err := q.Get(id)
	if err != nil {
		return item, err
	}
	if _, err := os.Lstat(item.Path); err == nil {
		return item, fmt.Errorf("restore %s: a file exists at %s; move it away first", id, item.Path)
	}
	in, err := os.Open(filepath.Join(q.dir, id+".bin"))
	if err != nil {
		return item, err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return item, err
	}
	n := fi.Size() - aes.BlockSize - sha256.Size
	if n < 0 {
		return item, fmt.Errorf("quarantined copy of %s is truncated", id)
	}
	iv := make([]byte, aes.BlockSize)
	if _, err := io.ReadFull(in, iv); err != nil {
		return item, err
	}
	mac := hmac.New(sha256.New, q.key[32:])
	mac.Write(iv)
	if _, err := io.Copy(mac, io.NewSectionReader(in, aes.BlockSize, n)); err != nil {
		return item, err
	}
	want := make([]byte, sha256.Size)
	if _, err := in.ReadAt(want, aes.BlockSize+n); err != nil {
		return item, err
	}
	if !hmac.Equal(mac.Sum(nil), want) {
		return item, fmt.Errorf("quarantined copy of %s fails its integrity check; not restored", id)
	}
	tmp, err := os.CreateTemp(filepath.Dir(item.Path), ".palisade-restore-*")
	if err != nil {
		return item, fmt.Errorf("restore into %s: %w", filepath.Dir(item.Path), err)
	}
	defer os.Remove(tmp.Name())
	block, _ := aes.NewCipher(q.key[:32])
	dec := cipher.StreamReader{S: cipher.NewCTR(block, iv), R: io.NewSectionReader(in, aes.BlockSize, n)}
	sum := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, sum), dec); err != nil {
		tmp.Close()
		return item, err
	}
	if hex.EncodeToString(sum.Sum(nil)) != item.Hashes["sha256"] {
		tmp.Close()
		return item, fmt.Errorf("restored content of %s does not match its recorded SHA-256", id)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return item, err
	}
	tmp.Close()
	if err := os.Chown(tmp.Name(), item.UID, item.GID); err != nil && os.Geteuid() == 0 {
		return item, err
	}
	if err := os.Chmod(tmp.Name(), item.Mode.Perm()|item.Mode&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky)); err != nil {
		return item, err
	}
	if err := os.Chtimes(tmp.Name(), item.ModTime, item.ModTime); err != nil {
		return item, err
	}
	if err := os.Link(tmp.Name(), item.Path); err != nil { // fails rather than overwrite a file created meanwhile
		return item, fmt.Errorf("restore %s: %w", item.Path, err)
	}
	os.Remove(filepath.Join(q.dir, id+".bin"))
	os.Remove(q.recordPath(id))
	return item, nil
}

// Delete destroys an item for good.
func (q *Quarantine) Delete(id string) error {
	if _, err := q.Get(id); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(q.dir, id+".bin")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.Remove(q.recordPath(id))
}

func newItemID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return "q-" + hex.EncodeToString(b)
}

func validItemID(id string) bool {
	if len(id) != 26 || !strings.HasPrefix(id, "q-") {
		return false
	}
	_, err := hex.DecodeString(id[2:])
	return err == nil
}
