// Command authbench runs Palisade's brute-force engine over a log file the way the agent would:
// parse every line, hand what parses to the detector. It prints lines/s, matched lines,
// findings and distinct attacker addresses, and with -truth (from authloggen) which labelled
// attackers were found and whether any benign address or user was reported.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/palisade-cwpp/palisade/internal/detect/bruteforce"
	"github.com/palisade-cwpp/palisade/internal/detect/bruteforce/gen"
)

func main() {
	in := flag.String("in", "auth.log", "log file")
	year := flag.Int("year", 2026, "year of RFC 3164 timestamps")
	truthFile := flag.String("truth", "", "labels from authloggen -truth, to score the findings")
	flag.Parse()
	if err := run(*in, *year, *truthFile); err != nil {
		fmt.Fprintln(os.Stderr, "authbench:", err)
		os.Exit(1)
	}
}

func run(in string, year int, truthFile string) error {
	start := time.Now()
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	p := bruteforce.Parser{Year: year, Location: time.UTC}
	d, err := bruteforce.NewDetector(bruteforce.DefaultConfig())
	if err != nil {
		return err
	}
	lines, matched, findings := 0, 0, 0
	keys := map[string]map[string]bool{}
	ips := map[string]bool{}
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			for err == bufio.ErrBufferFull { // a line longer than the buffer: skip it
				_, err = r.ReadSlice('\n')
			}
			lines++
			continue
		}
		if len(line) == 0 && err != nil {
			if err == io.EOF {
				break
			}
			return err
		}
		lines++
		e, ok := p.ParseLine(line)
		if !ok {
			continue
		}
		matched++
		for _, f := range d.Observe(e) {
			findings++
			if keys[f.RuleID] == nil {
				keys[f.RuleID] = map[string]bool{}
			}
			keys[f.RuleID][f.DedupKey] = true
			if f.Evidence.SourceIP != "" {
				ips[f.Evidence.SourceIP] = true
			}
		}
	}
	secs := time.Since(start).Seconds()
	var perRule []string
	for r, m := range keys {
		perRule = append(perRule, fmt.Sprintf("%s=%d", strings.TrimPrefix(r, "bruteforce."), len(m)))
	}
	sort.Strings(perRule)
	fmt.Printf("palisade: %d lines in %.2f s = %.0f lines/s; matched %d; findings %d (keys: %s); distinct attacker IPs %d\n",
		lines, secs, float64(lines)/secs, matched, findings, strings.Join(perRule, " "), len(ips))
	fmt.Printf("RESULT palisade lines_per_s=%.0f matched=%d findings=%d attacker_ips=%d\n", float64(lines)/secs, matched, findings, len(ips))
	if truthFile == "" {
		return nil
	}
	b, err := os.ReadFile(truthFile)
	if err != nil {
		return err
	}
	var t gen.Truth
	if err := json.Unmarshal(b, &t); err != nil {
		return err
	}
	found, total := map[gen.Kind]int{}, map[gen.Kind]int{}
	attacker := map[string]bool{}
	for _, a := range t.Attackers {
		total[a.Kind]++
		for _, s := range a.Sources {
			attacker[s.String()] = true
		}
		ok := false
		switch a.Kind {
		case gen.Guesser, gen.Enumerator:
			ok = ips[a.Sources[0].String()]
		case gen.Succeeder:
			ok = keys[bruteforce.RuleSucceeded][a.Sources[0].String()]
		case gen.Sprayer:
			ok = keys[bruteforce.RuleDistributed][a.User]
		case gen.Local:
			ok = keys[bruteforce.RuleLocalAuth][a.User]
		}
		if ok {
			found[a.Kind]++
		}
	}
	benign := 0
	for _, s := range t.BenignSources {
		if ips[s.String()] {
			benign++
		}
	}
	for _, u := range t.BenignUsers {
		if keys[bruteforce.RuleDistributed][u] || keys[bruteforce.RuleLocalAuth][u] {
			benign++
		}
	}
	bots := 0
	for ip := range ips {
		if !attacker[ip] {
			bots++
		}
	}
	var kinds []string
	for _, k := range []gen.Kind{gen.Guesser, gen.Enumerator, gen.Succeeder, gen.Sprayer, gen.Local} {
		if total[k] > 0 {
			kinds = append(kinds, fmt.Sprintf("%s %d/%d", k, found[k], total[k]))
		}
	}
	fmt.Printf("palisade: found %s; benign reported %d; background addresses reported %d\n", strings.Join(kinds, ", "), benign, bots)
	return nil
}
