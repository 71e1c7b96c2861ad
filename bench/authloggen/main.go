// Command authloggen writes a synthetic, labelled sshd log for comparing brute-force detectors:
// tens of thousands of background addresses trying a few passwords each, guessers, enumerators,
// password sprayers, guessers that then log in, benign users who sometimes mistype, and other
// programs' lines. Same flags, same file. With -truth it also writes who is who as JSON.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/palisade-cwpp/palisade/internal/detect/bruteforce/gen"
)

func main() {
	lines := flag.Int("lines", 1_000_000, "lines to write")
	seed := flag.Uint64("seed", 1, "random seed")
	out := flag.String("out", "auth.log", "log file to write")
	truth := flag.String("truth", "", "also write the labels (attackers, benign addresses) as JSON here")
	flavor := flag.String("flavor", string(gen.OpenSSH89), "OpenSSH flavor: 7.4, 8.2, 8.9 (RFC 3164) or 9.2 (RFC 3339)")
	all := flag.Bool("all-services", false, "include vsftpd, ProFTPD, MySQL, PostgreSQL, Dovecot, Postfix, su and sudo")
	flag.Parse()
	if err := run(*lines, *seed, *out, *truth, gen.Flavor(*flavor), !*all); err != nil {
		fmt.Fprintln(os.Stderr, "authloggen:", err)
		os.Exit(1)
	}
}

func run(lines int, seed uint64, out, truthFile string, flavor gen.Flavor, sshOnly bool) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var werr error
	t := gen.Generate(gen.Config{Lines: lines, Seed: seed, Flavor: flavor, SSHOnly: sshOnly,
		Start: time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)}, func(l []byte) {
		if werr == nil {
			_, werr = w.Write(l)
		}
		if werr == nil {
			werr = w.WriteByte('\n')
		}
	})
	if werr == nil {
		werr = w.Flush()
	}
	if err := f.Close(); werr == nil {
		werr = err
	}
	if werr != nil {
		return werr
	}
	kinds := map[gen.Kind]int{}
	for _, a := range t.Attackers {
		kinds[a.Kind]++
	}
	fmt.Fprintf(os.Stderr, "authloggen: %d lines to %s: attackers %v, %d benign addresses, %d background addresses\n",
		lines, out, kinds, len(t.BenignSources), t.Bots)
	if truthFile == "" {
		return nil
	}
	b, err := json.MarshalIndent(t, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(truthFile, b, 0o644)
}
