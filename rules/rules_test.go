package rules

import (
	"io/fs"
	"testing"
)

// TestBehaviorEmbedded: the behaviour rules are in the binary.
func TestBehaviorEmbedded(t *testing.T) {
	files, err := fs.Glob(Behavior, "behavior/*.yml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("embedded %v", files)
	}
}
