// Package behavior detects intrusions by what processes do: rules over single process, network
// and file events, and ordered sequences of them within a time window on one process tree or host.
package behavior
