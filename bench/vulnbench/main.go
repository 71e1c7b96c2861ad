// Command vulnbench prepares and runs Palisade's side of bench/vuln.sh.
//
//	vulnbench gen -dir DIR [-packages 3000] [-seed 1]
//	    writes DIR/db/osv-scanner/{Debian,Ubuntu}/all.zip (the synthetic full-size corpus of
//	    internal/detect/vuln/osvgen, laid out as osv-scanner's offline database) and
//	    DIR/root, a Debian 12 file system holding etc/os-release and var/lib/dpkg/status.
//	vulnbench match -db DIR/db/osv-scanner [-ecosystems Debian,Ubuntu] -root DIR/root
//	    collects the inventory as the agent does, loads the archives, matches the host and
//	    prints one "source version advisory" line per finding (source name, as osv-scanner
//	    reports Debian packages), with timings on stderr.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/palisade-cwpp/palisade/internal/agent/inventory"
	"github.com/palisade-cwpp/palisade/internal/detect/vuln"
	"github.com/palisade-cwpp/palisade/internal/detect/vuln/osvgen"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: vulnbench gen|match [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "gen":
		err = gen(os.Args[2:])
	case "match":
		err = match(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vulnbench:", err)
		os.Exit(1)
	}
}

func gen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	dir := fs.String("dir", "", "output directory")
	n := fs.Int("packages", 3000, "packages on the host")
	seed := fs.Uint64("seed", 1, "corpus seed")
	fs.Parse(args)
	cfg := osvgen.Config{Seed: *seed}
	for eco, write := range map[string]func(io.Writer, osvgen.Config) error{"Debian": osvgen.WriteDebian, "Ubuntu": osvgen.WriteUbuntu} {
		p := filepath.Join(*dir, "db", "osv-scanner", eco, "all.zip")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		var buf bytes.Buffer
		if err := write(&buf, cfg); err != nil {
			return err
		}
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			return err
		}
	}
	var buf bytes.Buffer
	if err := osvgen.DpkgStatus(&buf, osvgen.DebianHost(cfg, *n, 42)); err != nil {
		return err
	}
	root := filepath.Join(*dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(root, "var/lib/dpkg"), 0o755); err != nil {
		return err
	}
	osr := "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n"
	if err := os.WriteFile(filepath.Join(root, "etc/os-release"), []byte(osr), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), buf.Bytes(), 0o644)
}

func match(args []string) error {
	fs := flag.NewFlagSet("match", flag.ExitOnError)
	db := fs.String("db", "", "directory of <Ecosystem>/all.zip")
	ecos := fs.String("ecosystems", "Debian,Ubuntu", "archives to load")
	root := fs.String("root", "", "file system root holding the host's package database")
	fs.Parse(args)
	start := time.Now()
	b := vuln.NewBuilder(vuln.BuiltinEmergency())
	for _, eco := range strings.Split(*ecos, ",") {
		f, err := os.Open(filepath.Join(*db, eco, "all.zip"))
		if err != nil {
			return err
		}
		st, _ := f.Stat()
		if _, err := b.LoadArchive(f, st.Size()); err != nil {
			return err
		}
		f.Close()
	}
	idx := b.Build()
	loaded := time.Since(start)
	t := time.Now()
	inv, err := inventory.Collect(context.Background(), inventory.Config{Root: *root, LanguageDirs: []string{}})
	if err != nil {
		return err
	}
	pkgs := inv.Packages
	collected := time.Since(t)
	t = time.Now()
	ms := idx.MatchPackages(pkgs)
	matched := time.Since(t)
	seen := map[string]bool{}
	var lines []string
	for _, m := range ms {
		name := m.Package.SourceName
		if name == "" {
			name = m.Package.Name
		}
		l := name + " " + m.Package.Version + " " + m.Advisory.ID
		if !seen[l] {
			seen[l] = true
			lines = append(lines, l)
		}
	}
	slices.Sort(lines)
	w := bufio.NewWriter(os.Stdout)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	w.Flush()
	fmt.Fprintf(os.Stderr, "palisade: %d advisories loaded in %s; %d packages collected in %s, matched in %s: %d findings (%d distinct source/version/advisory)\n",
		idx.Len(), loaded.Round(time.Millisecond), len(pkgs), collected.Round(time.Millisecond), matched.Round(time.Microsecond), len(ms), len(lines))
	return nil
}
