package bruteforce_test

import (
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	bf "github.com/palisade-cwpp/palisade/internal/detect/bruteforce"
)

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestMemoryBound feeds twice MaxTracked addresses the most a line can make the detector keep:
// long lines, long and always new user names, and new accounts. The heap must stay within the
// bound the Config documents (at most about 8 KB per entry of each table), and one-shot bots
// with ordinary lines must cost under 1 KB each.
func TestMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a few hundred MB")
	}
	const n = 5000
	cfg := bf.DefaultConfig()
	cfg.MaxTracked = n
	long := strings.Repeat("L", 16000)
	measure := func(perSource int, line func(i, j int) bf.Event) float64 {
		d, _ := bf.NewDetector(cfg)
		before := heap()
		for i := range 2 * n {
			for j := range perSource {
				d.Observe(line(i, j))
			}
		}
		after := heap()
		runtime.KeepAlive(d)
		return float64(after-before) / n
	}
	src := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}) }
	worst := measure(12, func(i, j int) bf.Event {
		return bf.Event{Time: t0.Add(time.Duration(i*12+j) * time.Millisecond), Service: bf.ServiceSSHD, Outcome: bf.Failure,
			User: fmt.Sprintf("%d-%d-%s", i, j, long[:1000]), Source: src(i), Port: uint16(j + 1), Kind: bf.KindAttempt, Attempts: 1,
			Line: fmt.Sprintf("%d %d %s", i, j, long)}
	})
	typical := measure(1, func(i, j int) bf.Event {
		e := failed(time.Duration(i)*time.Millisecond, "1.1.1.1", "root", 22)
		e.Source = src(i)
		e.Line = fmt.Sprintf("Dec  4 20:01:02 web-01 sshd[%d]: Failed password for root from %s port 22 ssh2", i, e.Source)
		return e
	})
	t.Logf("heap per tracked address: worst %.0f bytes, one-shot bot %.0f bytes", worst, typical)
	if worst > 20<<10 || typical > 1<<10 {
		t.Errorf("worst %.0f bytes per entry (want < 20 KB), typical %.0f (want < 1 KB)", worst, typical)
	}
}
