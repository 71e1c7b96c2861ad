// Package rules holds Palisade's built-in detection rules as data files, embedded into the
// binaries that run them. It has no logic: each engine parses its own directory.
package rules

import "embed"

// Behavior holds the behaviour detector's rules, behavior/*.yml; the format is described in
// docs/RULES-BEHAVIOR.md.
//
//go:embed behavior/*.yml
var Behavior embed.FS
