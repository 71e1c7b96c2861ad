package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/palisade-cwpp/palisade/internal/detect/malware"
)

// defaultSignatureDir holds the signature files the agent keeps up to date.
const defaultSignatureDir = defaultDataDir + "/signatures"

const scanUsage = `Usage: palisade-agent scan [--db PATH]... [--yara FILE]... [--json] [--workers N] PATH...

Scans files and directories (recursively) for malware, like clamscan. Files are read, never run.
Symbolic links inside the directories are not followed; devices, fifos and sockets are skipped.
Archives (zip, tar, gzip, bzip2, xz) are unpacked in memory within limits; an archive bomb is reported.

  --db PATH      a signature file or directory (ClamAV .hdb .hsb .mdb .msb .ndb .ldb .cvd
                 .cld, .psig; YARA .yar/.yara files in a directory too); repeatable. Without
                 --db, the files in ` + defaultSignatureDir + ` are used if present.
  --yara FILE    a YARA rule file; repeatable
  --json         print JSON lines: one per infected, skipped or unreadable file or archive
                 member, then one {"summary": ...} line
  --workers N    files scanned at once (default 1)
  --max-file-mb N  files larger than this are hashed and body-scanned only (default 100)

Output: one line per infected file, "PATH: SIGNATURE (engine)", then a summary.
Exit status: 0 nothing found, 1 something infected, 2 usage or fatal error (or a PATH
that could not be read, when nothing was found).
`

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// errInfected makes the exit status 1; its message is the last line of output.
type errInfected struct{ n int64 }

func (e errInfected) Error() string { return fmt.Sprintf("scan: %d infected file(s) found", e.n) }

func runScan(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("scan", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), scanUsage) }
	var dbs, yaras multiFlag
	fs.Var(&dbs, "db", "signature file (repeatable)")
	fs.Var(&yaras, "yara", "YARA rule file (repeatable)")
	asJSON := fs.Bool("json", false, "JSON lines output")
	workers := fs.Int("workers", 1, "files scanned at once")
	maxMB := fs.Int64("max-file-mb", 100, "largest file fully scanned, MiB")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() == 0 {
		return usageError{errors.New("scan: no PATH given (see palisade-agent scan --help)")}
	}
	if *workers < 1 || *workers > 256 || *maxMB < 1 {
		return usageError{errors.New("scan: --workers must be 1-256 and --max-file-mb at least 1")}
	}
	return scan(ctx, os.Stdout, os.Stderr, dbs, yaras, *asJSON, *workers, *maxMB<<20, fs.Args())
}

func scan(ctx context.Context, stdout, stderr io.Writer, dbs, yaras []string, asJSON bool, workers int, maxBytes int64, paths []string) error {
	start := time.Now()
	// Rule files kept beside the signatures count too.
	ruleDirs := dbs
	if len(dbs) == 0 {
		dbs, ruleDirs = defaultSignatures(defaultSignatureDir), []string{defaultSignatureDir}
	}
	yaras = append(yaras, malware.YARAFilesIn(ruleDirs)...)
	var db *malware.DB
	if len(dbs) > 0 {
		var err error
		restoreGC := lessGCWhileLoading()
		db, err = malware.LoadDB(dbs...)
		restoreGC()
		if err != nil {
			return usageError{fmt.Errorf("scan: signatures: %w", err)}
		}
		if sk := db.Skipped(); len(sk) > 0 {
			fmt.Fprintf(stderr, "palisade-agent scan: %d signature line(s) skipped (outside the supported subset, see docs/MALWARE.md):\n", db.Stats().Skipped)
			for _, line := range sk[:min(len(sk), 10)] {
				fmt.Fprintf(stderr, "  %s\n", line)
			}
		}
	} else {
		fmt.Fprintf(stderr, "palisade-agent scan: no signatures given and none in %s: hash and body engines idle\n", defaultSignatureDir)
	}
	var rules *malware.YARARules
	if len(yaras) > 0 {
		var err error
		if rules, err = malware.LoadYARAFiles(yaras...); err != nil {
			return usageError{fmt.Errorf("scan: %w", err)}
		}
	}
	if db == nil && rules == nil {
		return usageError{errors.New("scan: nothing to scan with: give --db or --yara")}
	}
	s := malware.NewScanner(db, rules, malware.Config{Workers: workers, MaxFileBytes: maxBytes})
	enc := json.NewEncoder(stdout)
	var total malware.WalkStats
	missing := 0
	report := func(r malware.Result) error {
		for _, m := range r.Flatten() {
			if asJSON {
				if len(m.Verdicts) > 0 || m.Skipped != "" {
					if err := enc.Encode(m); err != nil {
						return err
					}
				}
				continue
			}
			for _, v := range m.Verdicts {
				if _, err := fmt.Fprintf(stdout, "%s: %s (%s)\n", m.Path, v.Signature, v.Engine); err != nil {
					return err
				}
			}
			if m.Skipped != "" && strings.HasPrefix(m.Skipped, "unreadable") {
				fmt.Fprintf(stderr, "%s: %s\n", m.Path, m.Skipped)
			}
		}
		return nil
	}
	for _, p := range paths {
		st, err := s.Walk(ctx, p, report)
		if err != nil {
			if ctx.Err() != nil {
				return usageError{fmt.Errorf("scan: interrupted: %w", err)}
			}
			var pe *os.PathError
			if errors.As(err, &pe) && st.Files == 0 {
				fmt.Fprintf(stderr, "%s: %v\n", p, pe.Err)
				total.Unreadable++
				missing++
				continue
			}
			return usageError{fmt.Errorf("scan: %s: %w", p, err)}
		}
		total = total.Add(st)
	}
	elapsed := time.Since(start)
	if asJSON {
		if err := enc.Encode(map[string]any{"summary": total, "yara_rules": rules.Len(), "yara_gated": rules.Gated(), "seconds": elapsed.Seconds()}); err != nil {
			return usageError{err}
		}
	} else {
		var st malware.DBStats
		if db != nil {
			st = db.Stats()
		}
		fmt.Fprintf(stdout, `
----------- SCAN SUMMARY -----------
Signature files: %d (%d signatures)
YARA rules: %d (%d run only where their strings occur)
Scanned files: %d
Infected files: %d
Archives opened: %d
Archive limits hit: %d
Skipped (members): %d
Special files skipped: %d
Unreadable: %d
Data scanned: %.2f MB
Time: %.3f sec
`, st.Files, st.MD5+st.SHA1+st.SHA256+st.SectionMD5+st.SectionSHA+st.Body+st.Logical, rules.Len(), rules.Gated(), total.Files, total.Infected, total.Archives, total.BombsStopped,
			total.Skipped, total.SpecialSkipped, total.Unreadable, float64(total.Bytes)/(1<<20), elapsed.Seconds())
	}
	if total.Infected > 0 {
		return errInfected{total.Infected}
	}
	if missing > 0 {
		return usageError{fmt.Errorf("scan: %d PATH(s) could not be read", missing)}
	}
	return nil
}

// defaultSignatures lists the signature files in dir, or nothing if there is none.
func defaultSignatures(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() && malware.IsSignatureFile(e.Name()) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out
}

// loadGCPercent is the GC target while signatures load.
const loadGCPercent = 400

// lessGCWhileLoading raises the GC target to loadGCPercent, unless it is higher or off, until
// the returned function is called. Loading signatures makes short-lived garbage while the heap
// is still small: collecting it at every doubling from 4 MiB took a seventh of the start-up; a
// few MiB more, once, cost less. Not for YARA rules: parsing them makes gigabytes of garbage,
// and the heap would grow to five times what it holds.
func lessGCWhileLoading() (restore func()) {
	gc := debug.SetGCPercent(loadGCPercent)
	if gc < 0 || gc >= loadGCPercent {
		debug.SetGCPercent(gc)
		return func() {}
	}
	return func() { debug.SetGCPercent(gc) }
}
