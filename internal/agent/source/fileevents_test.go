package source

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestFileWatchReportsWrittenFiles(t *testing.T) {
	for _, noFan := range []bool{false, true} {
		name := map[bool]string{false: "fanotify", true: "inotify"}[noFan]
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			other := t.TempDir()
			w, err := OpenFileWatch([]string{root}, WatchOptions{NoFanotify: noFan})
			if err != nil {
				t.Fatal(err)
			}
			if !noFan && w.Mode() != "fanotify" {
				if os.Geteuid() == 0 {
					t.Fatalf("fanotify unavailable as root: mode %s", w.Mode())
				}
				t.Skip("fanotify needs CAP_SYS_ADMIN")
			}
			var mu sync.Mutex
			seen := map[string]time.Time{}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- w.Run(ctx, func(p string) error {
					mu.Lock()
					seen[p] = time.Now()
					mu.Unlock()
					return nil
				})
			}()
			defer func() { cancel(); <-done }()
			time.Sleep(50 * time.Millisecond)

			sub := filepath.Join(root, "uploads", "2026")
			if err := os.MkdirAll(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond) // inotify adds the new directories' watches
			want := []string{filepath.Join(root, "a.php"), filepath.Join(sub, "b.jpg")}
			start := time.Now()
			for _, p := range want {
				os.WriteFile(p, []byte("<?php eval($_POST['x']); ?>"), 0o644)
			}
			os.WriteFile(filepath.Join(other, "elsewhere"), []byte("x"), 0o644)
			deadline := time.Now().Add(3 * time.Second)
			for {
				mu.Lock()
				n := 0
				for _, p := range want {
					if _, ok := seen[p]; ok {
						n++
					}
				}
				_, leaked := seen[filepath.Join(other, "elsewhere")]
				mu.Unlock()
				if leaked {
					t.Fatal("a file outside the watched tree was reported")
				}
				if n == len(want) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("saw %v, want %v", seen, want)
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Logf("%s: written files reported within %s", w.Mode(), time.Since(start).Round(time.Millisecond))
		})
	}
}

func TestFileWatchNothingToWatch(t *testing.T) {
	if _, err := OpenFileWatch(nil, WatchOptions{}); err == nil {
		t.Fatal("want an unavailable error")
	}
}
