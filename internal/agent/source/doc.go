// Package source holds the agent's collectors for authentication data: a file tailer for
// text logs such as /var/log/auth.log and /var/log/secure, a follower of the systemd journal,
// and readers and followers of the binary login records (utmp, wtmp, btmp, lastlog).
//
// Sources never decide. They deliver lines and records exactly as the system wrote them
// (bytes are not cleaned, re-encoded or interpreted) and leave every judgement to the
// detection engines in internal/detect. What sources do own is getting the data robustly:
// following files across appends, rename rotation, copytruncate, deletion and re-creation;
// holding a partial last line until it is complete; resuming after an agent restart from a
// saved position without re-delivering what was already processed; restarting journalctl
// when it dies.
//
// A source that cannot run on this host (no journal in a container, a log file that does not
// exist, no permission) is not a failure of the agent: constructors return an error that
// matches ErrUnavailable (with the reason in an *UnavailableError), and running sources report
// their health as a finding.ComponentState through TailOptions.Status or
// JournalOptions.Status, which fits Agent.SetComponent directly. A host whose log source is
// unavailable is not a quiet host, and the console shows the difference.
//
// Everything a source runs or reads is fixed by the agent's own configuration; nothing that
// arrives from the console reaches a path, a command line or a journal match here.
package source

import (
	"errors"
	"sync"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// ErrUnavailable is matched (errors.Is) by errors that mean "this source cannot run on this
// host", as opposed to a bug or a transient failure. The error is an *UnavailableError that
// carries the reason to show on the console.
var ErrUnavailable = errors.New("source unavailable")

// UnavailableError says why a source cannot run here. It matches ErrUnavailable.
type UnavailableError struct {
	Source string // component name, e.g. "journal"
	Reason string // human-readable, shown on the console
	Err    error  // underlying error, if any
}

func (e *UnavailableError) Error() string {
	return e.Source + ": unavailable: " + e.Reason
}

// Is makes errors.Is(err, ErrUnavailable) true.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// Unwrap returns the underlying error.
func (e *UnavailableError) Unwrap() error { return e.Err }

// ComponentStateOf turns a constructor error into the state to report for a source: running
// when err is nil, unavailable with the reason when it matches ErrUnavailable, degraded with
// the error text otherwise.
func ComponentStateOf(name string, err error) finding.ComponentState {
	cs := finding.ComponentState{Name: name, Kind: "source", State: finding.StateRunning}
	var ue *UnavailableError
	switch {
	case err == nil:
	case errors.As(err, &ue):
		cs.State, cs.Reason = finding.StateUnavailable, ue.Reason
	default:
		cs.State, cs.Reason = finding.StateDegraded, err.Error()
	}
	return cs
}

// statusReporter calls a Status callback only when the state or reason changes.
type statusReporter struct {
	name string
	fn   func(finding.ComponentState)

	mu   sync.Mutex
	last finding.ComponentState
	set  bool
}

func (r *statusReporter) report(state, reason string) {
	if r.fn == nil {
		return
	}
	cs := finding.ComponentState{Name: r.name, Kind: "source", State: state, Reason: reason}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.set && cs == r.last {
		return
	}
	r.last, r.set = cs, true
	r.fn(cs)
}
