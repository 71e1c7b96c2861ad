package web

import (
	"fmt"
	"os"
	"testing"

	"github.com/palisade-cwpp/palisade/internal/console/store/pgtest"
)

// TestMain stops the PostgreSQL server BenchmarkPagesPostgres may have started.
func TestMain(m *testing.M) {
	code := m.Run()
	if err := pgtest.StopShared(); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest.StopShared:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}
