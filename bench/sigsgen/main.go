// Command sigsgen writes a deterministic malware-signature benchmark set for bench/malware.sh:
// the same signatures as ClamAV databases (.ndb body signatures, .hdb md5:size:name hashes) and
// as YARA rules (one rule per signature, in batch files), plus the planted samples that each
// signature must find: synthetic "malware" files carrying one body signature's bytes, files
// whose hash is listed, and EICAR test files, some inside zip and tar(.gz) archives.
// A manifest lists every planted file (relative to -samples) with the signature it carries and
// whether it sits in a compressed archive (which YARA, matching raw bytes, cannot see into).
//
// Body signatures are random 8-40-byte hex patterns: 60% plain, 20% with one to three "??"
// wildcard bytes, 20% two literal parts joined by a bounded jump ({n-m} in ClamAV, [n-m] in
// YARA). Only features that ClamAV, YARA and Palisade all support, with identical meaning.
package main

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"encoding/hex"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
)

// the EICAR test string, in two halves so that no source file holds it whole
const eicarA = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR`
const eicarB = `-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

type elem struct {
	lit      []byte // literal bytes, or nil for a gap
	wild     bool   // one ?? byte
	min, max int    // jump
}

type sig struct {
	name  string
	elems []elem
}

func (s sig) clam() string {
	var b strings.Builder
	for _, e := range s.elems {
		switch {
		case e.wild:
			b.WriteString("??")
		case e.lit != nil:
			b.WriteString(hex.EncodeToString(e.lit))
		default:
			fmt.Fprintf(&b, "{%d-%d}", e.min, e.max)
		}
	}
	return b.String()
}

func (s sig) yara() string {
	var b strings.Builder
	for _, e := range s.elems {
		switch {
		case e.wild:
			b.WriteString(" ??")
		case e.lit != nil:
			for _, c := range e.lit {
				fmt.Fprintf(&b, " %02x", c)
			}
		default:
			fmt.Fprintf(&b, " [%d-%d]", e.min, e.max)
		}
	}
	return b.String()
}

// instance returns bytes matching the signature: wildcards and jumps filled at random.
func (s sig) instance(r *rand.Rand) []byte {
	var out []byte
	for _, e := range s.elems {
		switch {
		case e.wild:
			out = append(out, byte(r.Intn(256)))
		case e.lit != nil:
			out = append(out, e.lit...)
		default:
			n := e.min + r.Intn(e.max-e.min+1)
			for i := 0; i < n; i++ {
				out = append(out, byte(r.Intn(256)))
			}
		}
	}
	return out
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	r.Read(b)
	return b
}

func genSig(r *rand.Rand, i int) sig {
	s := sig{name: fmt.Sprintf("Bench.Body.%05d", i)}
	switch k := i % 10; {
	case k < 6: // plain, 8-40 bytes
		s.elems = []elem{{lit: randBytes(r, 8+r.Intn(33))}}
	case k < 8: // 12-40 bytes, 1-3 ?? away from the first and last 4 bytes
		n := 12 + r.Intn(29)
		b := randBytes(r, n)
		wild := map[int]bool{}
		for w := 1 + r.Intn(3); len(wild) < w; {
			wild[4+r.Intn(n-8)] = true
		}
		start := 0
		for j := 0; j <= n; j++ {
			if j == n || wild[j] {
				if j > start {
					s.elems = append(s.elems, elem{lit: b[start:j]})
				}
				if j < n {
					s.elems = append(s.elems, elem{wild: true})
				}
				start = j + 1
			}
		}
	default: // A{n-m}B, parts 4-20 bytes
		lo := r.Intn(9)
		s.elems = []elem{{lit: randBytes(r, 4+r.Intn(17))}, {min: lo, max: lo + 1 + r.Intn(16)}, {lit: randBytes(r, 4+r.Intn(17))}}
	}
	return s
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "sigsgen:", err)
		os.Exit(1)
	}
}

func main() {
	seed := flag.Int64("seed", 1, "random seed")
	nsigs := flag.Int("sigs", 10000, "body signatures")
	nyara := flag.Int("yara-sigs", -1, "body signatures also written as YARA rules (default all)")
	batch := flag.Int("batch", 1000, "YARA rules per file")
	nbody := flag.Int("body-samples", 200, "planted files carrying a body signature")
	nhash := flag.Int("hash-samples", 20, "planted files listed by hash")
	sigdir := flag.String("sigdir", "sigs", "directory for bench.ndb and bench.hdb")
	yaradir := flag.String("yaradir", "yara", "directory for the YARA rule files")
	samples := flag.String("samples", "planted", "directory for the planted samples")
	manifest := flag.String("manifest", "planted.tsv", "manifest: path<TAB>signature<TAB>archive|plain")
	ntext := flag.Int("text-sigs", 0, "signatures written as ClamAV writes script ones (lower-case ASCII, normalised text) into text.ndb")
	flag.Parse()
	if *nyara < 0 || *nyara > *nsigs {
		*nyara = *nsigs
	}
	r := rand.New(rand.NewSource(*seed))
	for _, d := range []string{*sigdir, *yaradir, *samples} {
		must(os.MkdirAll(d, 0o755))
	}
	eicar := []byte(eicarA + eicarB)

	sigs := make([]sig, *nsigs)
	for i := range sigs {
		sigs[i] = genSig(r, i)
	}

	// ClamAV databases
	var ndb bytes.Buffer
	fmt.Fprintf(&ndb, "Bench.EICAR:0:*:%s\n", hex.EncodeToString(eicar))
	for _, s := range sigs {
		fmt.Fprintf(&ndb, "%s:0:*:%s\n", s.name, s.clam())
	}
	must(os.WriteFile(filepath.Join(*sigdir, "bench.ndb"), ndb.Bytes(), 0o644))
	if *ntext > 0 {
		// A generator of their own, so the other signatures and samples stay as they are.
		tr := rand.New(rand.NewSource(*seed + 1))
		const alpha = "abcdefghijklmnopqrstuvwxyz0123456789 ();$_=.'"
		var text bytes.Buffer
		for i := range *ntext {
			w := make([]byte, 12+tr.Intn(20))
			for j := range w {
				w[j] = alpha[tr.Intn(len(alpha))]
			}
			fmt.Fprintf(&text, "Bench.Text.%04d:0:*:%s\n", i, hex.EncodeToString(w))
		}
		must(os.WriteFile(filepath.Join(*sigdir, "text.ndb"), text.Bytes(), 0o644))
	}

	var hdb, yhash bytes.Buffer
	yhash.WriteString("import \"hash\"\n\n")
	addHash := func(name string, data []byte) {
		sum := md5.Sum(data)
		fmt.Fprintf(&hdb, "%x:%d:%s\n", sum, len(data), name)
		fmt.Fprintf(&yhash, "rule %s { condition: filesize == %d and hash.md5(0, filesize) == \"%x\" }\n",
			strings.ReplaceAll(name, ".", "_"), len(data), sum)
	}
	addHash("Bench.EICAR.Hash", eicar)
	hashFiles := make([][]byte, *nhash)
	for i := range hashFiles {
		hashFiles[i] = randBytes(r, 1024+r.Intn(63*1024))
		addHash(fmt.Sprintf("Bench.Hash.%03d", i), hashFiles[i])
	}
	must(os.WriteFile(filepath.Join(*sigdir, "bench.hdb"), hdb.Bytes(), 0o644))

	// YARA rules: the hash rules and EICAR in one file, body rules in batches
	fmt.Fprintf(&yhash, "rule Bench_EICAR { strings: $a = {%s } condition: $a }\n", sig{elems: []elem{{lit: eicar}}}.yara())
	must(os.WriteFile(filepath.Join(*yaradir, "bench-hash.yar"), yhash.Bytes(), 0o644))
	for start := 0; start < *nyara; start += *batch {
		var y bytes.Buffer
		for _, s := range sigs[start:min(start+*batch, *nyara)] {
			fmt.Fprintf(&y, "rule %s { strings: $a = {%s } condition: $a }\n", strings.ReplaceAll(s.name, ".", "_"), s.yara())
		}
		must(os.WriteFile(filepath.Join(*yaradir, fmt.Sprintf("bench-%03d.yar", start / *batch)), y.Bytes(), 0o644))
	}

	// planted samples
	mf, err := os.Create(*manifest)
	must(err)
	mw := bufio.NewWriter(mf)
	plant := func(rel string, data []byte, sigName, kind string) {
		p := filepath.Join(*samples, rel)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, data, 0o644))
		fmt.Fprintf(mw, "%s\t%s\t%s\n", rel, sigName, kind)
	}
	// a body sample: random bytes around one instance of the signature
	bodySample := func(s sig) []byte {
		b := randBytes(r, 256+r.Intn(32*1024))
		b = append(b, s.instance(r)...)
		return append(b, randBytes(r, r.Intn(8*1024))...)
	}
	step := max(1, *nyara/max(1, *nbody)) // planted signatures come from the YARA-compiled subset
	var inArchive [][2]string             // member name, signature
	var memberData [][]byte
	for j := 0; j < *nbody; j++ {
		s := sigs[(j*step)%*nyara]
		data := bodySample(s)
		if j%20 == 19 { // every 20th goes into the archives below instead
			inArchive = append(inArchive, [2]string{fmt.Sprintf("sample-%04d.bin", j), s.name})
			memberData = append(memberData, data)
			continue
		}
		plant(fmt.Sprintf("body/sample-%04d.bin", j), data, s.name, "plain")
	}
	for i, h := range hashFiles {
		plant(fmt.Sprintf("hash/hash-%03d.bin", i), h, fmt.Sprintf("Bench.Hash.%03d", i), "plain")
	}
	plant("eicar/eicar.com", eicar, "Bench.EICAR", "plain")
	plant("eicar/eicar.txt", append(append([]byte("EICAR test file follows\n"), eicar...), '\n'), "Bench.EICAR", "plain")
	plant("eicar/eicar-copy.com", eicar, "Bench.EICAR", "plain")

	type member struct {
		name string
		data []byte
	}
	zipOf := func(ms []member, method uint16) []byte {
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		for _, m := range ms {
			w, err := zw.CreateHeader(&zip.FileHeader{Name: m.name, Method: method})
			must(err)
			_, err = w.Write(m.data)
			must(err)
		}
		must(zw.Close())
		return b.Bytes()
	}
	tarOf := func(ms []member) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, m := range ms {
			must(tw.WriteHeader(&tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.data)), Typeflag: tar.TypeReg}))
			_, err := tw.Write(m.data)
			must(err)
		}
		must(tw.Close())
		return b.Bytes()
	}
	gz := func(data []byte) []byte {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		_, err := zw.Write(data)
		must(err)
		must(zw.Close())
		return b.Bytes()
	}
	filler := member{"README.txt", bytes.Repeat([]byte("nothing to see here\n"), 200)}
	// EICAR in a deflated zip, a tar.gz and a plain tar; each body member in one archive of
	// its own, alternating deflated zip, tar.gz and plain (uncompressed) tar.
	plant("archives/eicar.zip", zipOf([]member{filler, {"eicar.com", eicar}}, zip.Deflate), "Bench.EICAR", "archive")
	plant("archives/eicar.tar.gz", gz(tarOf([]member{filler, {"eicar.com", eicar}})), "Bench.EICAR", "archive")
	plant("archives/eicar.tar", tarOf([]member{filler, {"eicar.com", eicar}}), "Bench.EICAR", "plain")
	for i, m := range inArchive {
		ms := []member{filler, {m[0], memberData[i]}}
		switch i % 3 {
		case 0:
			plant(fmt.Sprintf("archives/body-%02d.zip", i), zipOf(ms, zip.Deflate), m[1], "archive")
		case 1:
			plant(fmt.Sprintf("archives/body-%02d.tar.gz", i), gz(tarOf(ms)), m[1], "archive")
		default:
			plant(fmt.Sprintf("archives/body-%02d.tar", i), tarOf(ms), m[1], "plain")
		}
	}
	must(mw.Flush())
	must(mf.Close())
	fmt.Printf("sigsgen: %d body signatures (%d as YARA rules), %d hash signatures, planted files in %s\n",
		*nsigs+1, *nyara+1, *nhash+1, *samples)
}
