// Command behaviorcost runs the agent's behaviour pipeline (the audit process-event source
// feeding the rule engine with the built-in rules, as the agent wires them) for a while and
// prints what it cost: CPU seconds, peak RSS, events seen and lost. bench/behavior.sh runs it
// beside a steady exec load.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/palisade-cwpp/palisade/internal/agent/source/procevents"
	"github.com/palisade-cwpp/palisade/internal/detect/behavior"
	"github.com/palisade-cwpp/palisade/internal/finding"
)

func main() {
	duration := flag.Duration("duration", 20*time.Second, "how long to watch")
	marker := flag.String("marker", "execload", "count exec events whose argv[1] is this")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile here")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	rules, problems, err := behavior.Builtin()
	if err != nil || len(problems) > 0 {
		fmt.Fprintln(os.Stderr, "rules:", err, problems)
		os.Exit(1)
	}
	eng, err := behavior.New(rules, behavior.Config{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	src, err := procevents.Open(procevents.Config{}, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	ctx, stop := context.WithTimeout(ctx, *duration)
	defer stop()
	var before syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	start := time.Now()
	var marked, findings int
	fmt.Fprintln(os.Stderr, "ready")
	err = src.Run(ctx, func(ev *behavior.Event) {
		if ev.Kind == behavior.KindExec && len(ev.Proc.Args) > 1 && ev.Proc.Args[1] == *marker {
			marked++
		}
		eng.Handle(ev, func(finding.Finding) { findings++ })
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	el := time.Since(start).Seconds()
	cpu := tv(after.Utime) - tv(before.Utime) + tv(after.Stime) - tv(before.Stime)
	st := src.Stats()
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"seconds": el, "cpu_seconds": cpu, "cpu_percent_of_one_core": 100 * cpu / el, "max_rss_mb": after.Maxrss / 1024,
		"marked_execs": marked, "findings": findings, "source": st, "engine": eng.Stats(),
	})
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
