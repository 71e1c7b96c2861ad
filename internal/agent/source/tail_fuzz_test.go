package source

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzTailer is a property test. The fuzz input scripts a writer: chunks of a stream of
// unique lines written with arbitrary boundaries (mid-line included), rename rotations,
// copytruncates and pauses, while a Tailer follows the file. The model computes what must
// arrive: every line completed in a file, in order, exactly once; plus each partial line left
// in a file at its rotation, exactly once (delivered when RotateWait ends, so anywhere in the
// sequence). With a truncation in the script, lines may be lost by design; then only that
// nothing crashes or hangs is checked.
func FuzzTailer(f *testing.F) {
	f.Add([]byte{0, 10, 1, 20, 5, 2, 30, 7, 3, 8}, false)
	f.Add([]byte{0, 255, 5, 0, 3, 5, 5, 1, 200, 6, 2, 40}, false)
	f.Add([]byte{4, 1, 4, 1, 4, 1, 5, 4, 1, 4, 1}, true)
	f.Add([]byte("\x00\x10\xff\xfe\n#\x05\x01\x40\x06\x00\x33"), false)
	f.Fuzz(func(t *testing.T, script []byte, poll bool) {
		if len(script) > 64 {
			script = script[:64]
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "auth.log")

		// The stream: unique lines "<n>.<filler>#". The filler comes from the input (binary,
		// invalid UTF-8 and all) without '\n' and '#', so every line completed in a file ends
		// with '#' (or is empty) and no partial line does (see rotate below).
		var stream []byte
		for n := 0; len(stream) < 4096; n++ {
			stream = fmt.Appendf(stream, "%d.", n)
			for i := range n % 23 {
				b := byte(n*31 + i)
				if len(script) > 0 {
					b = script[(n+i)%len(script)]
				}
				if b == '\n' || b == '#' {
					b = 'x'
				}
				stream = append(stream, b)
			}
			stream = append(stream, '#', '\n')
		}

		var completed, orphans []string
		var partial []byte
		truncated := false
		pos := 0
		w, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { w.Close() }()
		write := func(n int) {
			n = min(n, len(stream)-pos)
			chunk := stream[pos : pos+n]
			pos += n
			if _, err := w.Write(chunk); err != nil {
				t.Fatal(err)
			}
			for _, b := range chunk {
				if b == '\n' {
					completed = append(completed, string(partial))
					partial = partial[:0]
				} else {
					partial = append(partial, b)
				}
			}
		}

		opt := TailOptions{RotateWait: 10 * time.Millisecond, NoInotify: poll, PollInterval: 5 * time.Millisecond}
		tl, err := OpenTail(path, nil, opt)
		if err != nil {
			t.Fatal(err)
		}
		c := &collector{}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- tl.Run(ctx, c.out) }()
		defer func() {
			cancel()
			<-done
		}()

		// The tailer must have opened the file at the path before it is rotated again: a file
		// that lives at the path for less than a check interval is never seen by any tailer.
		syncFile := func() {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			_, ino, _ := fileIdentity(fi)
			waitFor(t, "tailer on the current file", 5*time.Second, func() bool { return tl.State().Inode == ino })
		}
		for i := 0; i < len(script); i++ {
			op := script[i]
			arg := 1
			if i+1 < len(script) {
				arg = int(script[i+1])
			}
			switch op % 8 {
			case 0, 1, 2, 3, 4:
				write(arg%97 + 1)
				i++
			case 5: // rename rotation (logrotate "create")
				if pos < len(stream) && stream[pos] == '\n' {
					write(1) // keep partial lines free of the '#' terminator
				}
				syncFile()
				if err := os.Rename(path, path+".1"); err != nil {
					t.Fatal(err)
				}
				w.Close()
				if w, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err != nil {
					t.Fatal(err)
				}
				if len(partial) > 0 {
					orphans = append(orphans, string(partial))
				}
				partial = partial[:0]
			case 6: // copytruncate
				truncated = true
				if err := os.Truncate(path, 0); err != nil {
					t.Fatal(err)
				}
				partial = partial[:0]
			case 7:
				time.Sleep(time.Duration(arg%5) * time.Millisecond)
				i++
			}
		}

		if truncated {
			// Lines may be lost by design (copytruncate); the run must still end cleanly.
			time.Sleep(30 * time.Millisecond)
			return
		}

		want := len(completed) + len(orphans)
		deadline := time.Now().Add(10 * time.Second)
		for c.n() < want && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(15 * time.Millisecond) // extras, if any, show up
		got := c.texts()
		if len(got) != want {
			t.Fatalf("delivered %d lines, want %d completed + %d partial at rotation\n got %q\nwant %q + %q", len(got), len(completed), len(orphans), got, completed, orphans)
		}
		left := map[string]int{}
		for _, o := range orphans {
			left[o]++
		}
		k := 0
		for _, s := range got {
			if s == "" || strings.HasSuffix(s, "#") {
				if k >= len(completed) || completed[k] != s {
					t.Fatalf("line %q out of order or unexpected (next expected %d of %d)\n got %q\nwant %q", s, k, len(completed), got, completed)
				}
				k++
				continue
			}
			if left[s] == 0 {
				t.Fatalf("unexpected line %q\n got %q\nwant %q + %q", s, got, completed, orphans)
			}
			left[s]--
		}
	})
}

// BenchmarkTailer reads a large file from the start: the throughput of catching up on a
// backlog (the file is in the page cache after the first round).
func BenchmarkTailer(b *testing.B) {
	path := filepath.Join(b.TempDir(), "auth.log")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	const lines = 500_000
	var buf bytes.Buffer
	for i := range lines {
		fmt.Fprintf(&buf, "2025-03-01T12:00:%02d.123456+00:00 web-1 sshd[%d]: Failed password for invalid user admin%d from 198.51.100.%d port %d ssh2\n",
			i%60, 1000+i%30000, i%1000, i%250, 1024+i%60000)
		if buf.Len() > 1<<20 {
			f.Write(buf.Bytes())
			buf.Reset()
		}
	}
	f.Write(buf.Bytes())
	fi, _ := f.Stat()
	f.Close()
	size := fi.Size()
	b.SetBytes(size)
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		tl, err := OpenTail(path, nil, TailOptions{FromStart: true})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		n := 0
		var total int
		err = tl.Run(ctx, func(l Line) error {
			n++
			total += len(l.Text)
			if n == lines {
				cancel()
			}
			return nil
		})
		cancel()
		if err != nil || n != lines {
			b.Fatalf("%d lines, %v", n, err)
		}
	}
	secs := time.Since(start).Seconds()
	b.ReportMetric(float64(lines)*float64(b.N)/secs, "lines/s")
}
