// Package behavior detects intrusions by what processes do: rules over single process, network
// and file events, and ordered sequences of them within a time window on one process tree or host.
//
// Rules are data: the built-in files in rules/behavior, an operator's own files (LoadRules) and
// Sigma process_creation rules (LoadSigma), in the format of docs/RULES-BEHAVIOR.md. New compiles
// a RuleSet into an Engine that indexes the rules by process names, command-line literals, file
// paths, ports and flags, so that an event is evaluated against the few rules that can match it.
// Engine.Handle is fed one event at a time by one goroutine and emits finding.Findings; time is
// the events' time, never the clock.
//
// The package does no I/O besides reading rule files from an fs.FS: the kernel event source and
// the agent wiring live elsewhere, and host identity is set by the agent.
package behavior
