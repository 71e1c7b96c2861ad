//go:build !linux

package procevents

import (
	"context"
	"log/slog"

	"github.com/palisade-cwpp/palisade/internal/agent/source"
	"github.com/palisade-cwpp/palisade/internal/detect/behavior"
)

// Source reads process events from the audit subsystem, which only Linux has.
type Source struct{}

// Open fails: there is no audit subsystem on this system.
func Open(Config, *slog.Logger) (*Source, error) {
	return nil, &source.UnavailableError{Source: "process-events", Reason: "the Linux audit subsystem is not available on this system"}
}

func (s *Source) Mode() string                                     { return "" }
func (s *Source) Fallback() string                                 { return "" }
func (s *Source) Stats() Stats                                     { return Stats{} }
func (s *Source) Close() error                                     { return nil }
func (s *Source) Run(context.Context, func(*behavior.Event)) error { return nil }
