package bruteforce

import (
	"net/netip"
	"time"
)

// Outcome is what a log line says happened to an authentication.
type Outcome uint8

const (
	// Failure is a failed authentication of a user that exists or may exist, or a probe that
	// named no user (Event.User empty).
	Failure Outcome = iota + 1
	// InvalidUser is a failure for a user the service says does not exist.
	InvalidUser
	// Success is an accepted login.
	Success
	// Blocked is a service ending a connection after failures: "maximum authentication attempts
	// exceeded", "Too many authentication failures", ProFTPD's "Maximum login attempts".
	Blocked
)

var outcomeNames = [...]string{"", "failure", "invalid-user", "success", "blocked"}

// String returns the outcome's lower-case name.
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) && o != 0 {
		return outcomeNames[o]
	}
	return "unknown"
}

// failed reports whether o is one of the failure outcomes.
func (o Outcome) failed() bool { return o == Failure || o == InvalidUser || o == Blocked }

// Kind says how a failure line counts towards its source, so that the several lines a service
// writes about one attempt count once. The detector groups the lines of one source into
// connections: by source port where the line has one, otherwise by user, for lines within 30
// seconds of each other. A connection counts max(its Attempt lines, the largest Attempts of its
// Connection and Summary lines).
type Kind uint8

const (
	// KindAttempt is a line that reports one authentication attempt: "Failed password for ...",
	// "FAIL LOGIN", "Access denied for user".
	KindAttempt Kind = iota
	// KindConnection is a line that says a connection failed at least Attempts times so far,
	// which other lines may report too: "Invalid user", PAM's view of an sshd password failure,
	// a preauth disconnect, a probe.
	KindConnection
	// KindSummary is a line that says a connection ended after at least Attempts failures:
	// Dovecot's "auth failed, 3 attempts", sudo's "3 incorrect password attempts", "FAILED SU".
	KindSummary
)

var kindNames = [...]string{"attempt", "connection", "summary"}

// String returns the kind's lower-case name.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Service names as they appear in Event.Service.
const (
	ServiceSSHD       = "sshd"
	ServiceVsftpd     = "vsftpd"
	ServiceProFTPD    = "proftpd"
	ServiceMySQL      = "mysql"
	ServicePostgreSQL = "postgresql"
	ServiceDovecot    = "dovecot"
	ServicePostfix    = "postfix"
	ServiceSu         = "su"
	ServiceSudo       = "sudo"
)

// Event is one authentication-related log line, parsed.
type Event struct {
	Time    time.Time
	Service string // one of the Service constants
	Outcome Outcome
	// User is the account the line is about, as the service logged it (which may be anything an
	// attacker typed: empty, with spaces, " from ", not UTF-8). For su it is the account switched
	// to; for sudo the account whose password was asked for, or the run-as user of a summary.
	User string
	// Source is the client's address, IPv4-mapped addresses unmapped. It is the zero Addr for
	// local services (su, sudo).
	Source netip.Addr
	Port   uint16 // the client's port, 0 when the line does not say
	// Method is the authentication method when the line names one: "password", "publickey",
	// "keyboard-interactive/pam", "none", "PLAIN", "LOGIN"...
	Method string
	// Line is the whole line (ParseLine) or "PROG: MESSAGE" (ParseMessage), for evidence.
	Line string
	// Kind and Attempts say how the line counts (see Kind). Attempts is at least 1 for a failure.
	Kind     Kind
	Attempts uint16
	// By and TTY are set for local services: the user who ran su or sudo and the terminal
	// ("pts/0"), when the line says.
	By  string
	TTY string
}
