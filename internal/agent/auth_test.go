package agent

import (
	"testing"

	"github.com/palisade-cwpp/palisade/internal/agent/source"
)

func TestJournalSenderMustBeTheNamedProgram(t *testing.T) {
	for _, tt := range []struct {
		ident, comm string
		want        bool
	}{
		{"sshd", "sshd", true},
		{"sshd", "sshd-session", true},
		{"sshd", "logger", false},
		{"sshd", "python3", false},
		{"sudo", "sudo", true},
		{"su", "systemd-cat", false},
		{"postfix/smtpd", "smtpd", true},
		{"postfix/smtpd", "logger", false},
		{"dovecot", "imap-login", true},
		{"mysqld", "mariadbd", true},
		{"sshd", "", true}, // old journals carry no _COMM
	} {
		if got := genuine(source.JournalEntry{Identifier: tt.ident, Comm: tt.comm}); got != tt.want {
			t.Errorf("identifier %q from %q: genuine = %v, want %v", tt.ident, tt.comm, got, tt.want)
		}
	}
}
