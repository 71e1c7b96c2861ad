// Command execload runs a program at a steady rate of executions per second, for measuring what
// watching executions costs (bench/behavior.sh). Each execution is a real fork and exec.
package main

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	rate := flag.Int("rate", 2000, "executions per second")
	duration := flag.Duration("duration", 20*time.Second, "how long to run")
	prog := flag.String("prog", "/bin/true", "program to execute")
	workers := flag.Int("workers", 8, "concurrent spawners")
	flag.Parse()

	var done, failed atomic.Int64
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	perTick := *rate / 100
	jobs := make(chan int, *rate)
	var wg sync.WaitGroup
	attr := &syscall.ProcAttr{Files: []uintptr{0, 1, 2}, Env: []string{"PATH=/usr/bin:/bin"}}
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				pid, err := syscall.ForkExec(*prog, []string{*prog, "execload", fmt.Sprint(i)}, attr)
				if err != nil {
					failed.Add(1)
					continue
				}
				var ws syscall.WaitStatus
				syscall.Wait4(pid, &ws, 0, nil)
				done.Add(1)
			}
		}()
	}
	start := time.Now()
	n, dropped := 0, 0
	for time.Since(start) < *duration {
		<-tick.C
		for i := 0; i < perTick; i++ {
			select {
			case jobs <- n:
				n++
			default:
				dropped++ // the machine cannot keep up with the rate
			}
		}
	}
	close(jobs)
	wg.Wait()
	el := time.Since(start).Seconds()
	fmt.Printf(`{"executed":%d,"failed":%d,"not_started":%d,"seconds":%.2f,"rate":%.0f}`+"\n", done.Load(), failed.Load(), dropped, el, float64(done.Load())/el)
	if failed.Load() > 0 {
		os.Exit(1)
	}
}
