// Package procevents is the agent's kernel process-event source: every execve with its full
// argv (short-lived processes included), outbound connects, accepts and changes to watched
// persistence paths, read from the Linux audit subsystem, with each process's ancestry,
// container and the state of its standard descriptors resolved, as behavior.Event values.
//
// The source installs its own audit rules (keys palisade-exec, palisade-net, palisade-file)
// and removes them when it stops. When an audit daemon already owns the audit socket, the
// source listens on the audit multicast group beside it and changes nothing else; otherwise it
// takes the socket itself, so the kernel does not print every record to its log, and sets the
// kernel backlog to never make a process wait for it (records beyond the backlog are dropped
// and counted by the kernel, which this source reports). Events are shed, counted, when the
// consumer falls behind; the host is never slowed to wait for the agent.
//
// It decides nothing: rules live in internal/detect/behavior.
package procevents

import (
	"time"

	"github.com/palisade-cwpp/palisade/internal/detect/behavior"
)

// Config tunes the source. The zero value is usable.
type Config struct {
	// Socket is how records are received: "auto" (multicast when an audit daemon runs, else
	// unicast), "unicast", "multicast", or "proc-connector" (no audit at all: exec events only,
	// argv read from /proc, so lost for processes that exit at once).
	Socket string `yaml:"socket"`
	// NoFallback makes the source unavailable when audit is, instead of falling back to the
	// proc connector.
	NoFallback bool `yaml:"no_fallback"`
	// NoNetwork turns off connect and accept events.
	NoNetwork bool `yaml:"no_network"`
	// Watch lists paths whose changes are events (persistence and account files); nil means
	// DefaultWatch. Paths that do not exist are skipped.
	Watch []string `yaml:"watch"`
	// Delay is how long an event waits before the process's descriptors are read, so a shell
	// that redirects its descriptors right after starting is seen redirected (default 100ms).
	Delay time.Duration `yaml:"delay"`
	// Queue bounds the events between the kernel reader and the consumer (default 16384).
	Queue int `yaml:"queue"`
	// Backlog is the kernel's audit backlog when this source owns the socket (default 8192).
	Backlog uint32 `yaml:"backlog"`
	// MaxProcesses bounds the process table (default 65536).
	MaxProcesses int `yaml:"max_processes"`
	// Proc is the procfs mount (default /proc).
	Proc string `yaml:"proc"`
}

// DefaultWatch are the paths attackers change to persist or to add themselves.
var DefaultWatch = []string{
	"/etc/crontab", "/etc/cron.d", "/etc/cron.hourly", "/etc/cron.daily", "/etc/cron.weekly", "/etc/cron.monthly",
	"/var/spool/cron", "/etc/passwd", "/etc/shadow", "/etc/group", "/etc/sudoers", "/etc/sudoers.d",
	"/etc/ld.so.preload", "/etc/systemd/system", "/etc/rc.local", "/etc/init.d", "/etc/profile.d",
	"/etc/ssh/sshd_config", "/root/.ssh", "/root/.bashrc", "/root/.profile",
}

func (c Config) withDefaults() Config {
	if c.Socket == "" {
		c.Socket = "auto"
	}
	if c.Watch == nil {
		c.Watch = DefaultWatch
	}
	if c.Delay <= 0 {
		c.Delay = 100 * time.Millisecond
	}
	if c.Queue <= 0 {
		c.Queue = 16384
	}
	if c.Backlog == 0 {
		c.Backlog = 8192
	}
	if c.MaxProcesses <= 0 {
		c.MaxProcesses = 65536
	}
	if c.Proc == "" {
		c.Proc = "/proc"
	}
	return c
}

// Stats counts what the source read, delivered and lost. Every loss has a counter.
type Stats struct {
	Records    uint64 `json:"records"`     // audit records read
	Events     uint64 `json:"events"`      // events delivered
	Shed       uint64 `json:"shed"`        // events dropped because the consumer fell behind
	KernelLost uint64 `json:"kernel_lost"` // records the kernel dropped since the source started
	Overruns   uint64 `json:"overruns"`    // receive buffer overflows (records lost in the socket)
	Malformed  uint64 `json:"malformed"`   // records that did not parse
	Incomplete uint64 `json:"incomplete"`  // events whose records never completed, or whose process exited before /proc was read (proc connector)
}

// pendingEvent is an event waiting for its descriptors to be read.
type pendingEvent struct {
	ev       *behavior.Event
	acceptFD int
	due      time.Time
}
