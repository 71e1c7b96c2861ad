package behavior

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// TestEvent is the YAML form of an event in a rule's test cases. Unset fields are unknown, as
// in Event; see docs/RULES-BEHAVIOR.md for an example of each kind.
type TestEvent struct {
	Kind        string        `yaml:"kind"`
	After       time.Duration `yaml:"after"` // time since the previous event of the case (default 1s)
	Host        string        `yaml:"host"`
	TestProcess `yaml:",inline"`
	Parent      *TestProcess  `yaml:"parent"`    // the first ancestor
	Ancestors   []TestProcess `yaml:"ancestors"` // further ancestors, after the parent
	Std         []string      `yaml:"std"`       // fds 0-2: "tty", "pipe", "file", "null", "unix" or "socket 203.0.113.9:4444"
	Net         *struct {
		Proto  string `yaml:"proto"`
		Local  string `yaml:"local"`
		Remote string `yaml:"remote"`
	} `yaml:"net"`
	File *struct {
		Path string `yaml:"path"`
		Op   string `yaml:"op"`
		Mode uint32 `yaml:"mode"`
	} `yaml:"file"`
}

// TestProcess is the YAML form of a process in a test event.
type TestProcess struct {
	PID       int32    `yaml:"pid"`
	Exe       string   `yaml:"exe"`
	Args      []string `yaml:"args"`
	Cwd       string   `yaml:"cwd"`
	UID       *uint32  `yaml:"uid"`
	EUID      *uint32  `yaml:"euid"` // defaults to uid
	AUID      *uint32  `yaml:"auid"`
	TTY       string   `yaml:"tty"`
	Container string   `yaml:"container"`
}

type rawTest struct {
	Name   string      `yaml:"name"`
	Match  bool        `yaml:"match"`
	Title  string      `yaml:"title"` // when set, the finding's title must equal it
	Event  *TestEvent  `yaml:"event"`
	Events []TestEvent `yaml:"events"`
}

type ruleTest struct {
	name   string
	match  bool
	title  string
	events []*Event
}

// testEpoch is when the first event of a test case happens.
var testEpoch = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func compileTest(t rawTest) (ruleTest, error) {
	rt := ruleTest{name: t.Name, match: t.Match, title: t.Title}
	evs := t.Events
	if t.Event != nil {
		if len(evs) > 0 {
			return rt, errors.New("give event or events, not both")
		}
		evs = []TestEvent{*t.Event}
	}
	if len(evs) == 0 {
		return rt, errors.New("no event")
	}
	at := testEpoch
	for i, te := range evs {
		if te.After < 0 {
			return rt, fmt.Errorf("events[%d]: after is negative", i)
		}
		if i > 0 {
			if te.After == 0 {
				te.After = time.Second
			}
			at = at.Add(te.After)
		}
		ev, err := te.Event(at, int32(1000+i))
		if err != nil {
			return rt, fmt.Errorf("events[%d]: %w", i, err)
		}
		rt.events = append(rt.events, ev)
	}
	return rt, nil
}

// Event builds the event at time at; pid is used when the case gives none. Unless given, the
// parent is PID 500 (by default an interactive bash of the process's real uid) and its parent
// PID 400, so the events of one case share a process tree.
func (te *TestEvent) Event(at time.Time, pid int32) (*Event, error) {
	ev := &Event{Kind: ParseKind(te.Kind), Time: at, Host: te.Host}
	if ev.Kind == 0 {
		return nil, fmt.Errorf("kind %q: want exec, connect, accept, file or exit", te.Kind)
	}
	ev.Proc = te.TestProcess.process(pid)
	chain := []TestProcess{}
	switch {
	case te.Parent != nil:
		chain = append(chain, *te.Parent)
	case len(te.Ancestors) > 0:
		return nil, errors.New("ancestors need a parent first")
	default:
		// an interactive shell of the same user
		uid := ev.Proc.UID
		chain = append(chain, TestProcess{Exe: "/usr/bin/bash", Args: []string{"bash"}, UID: &uid})
	}
	chain = append(chain, te.Ancestors...)
	for i, tp := range chain {
		ev.Ancestors = append(ev.Ancestors, tp.process(int32(500-100*i)))
	}
	for i := range ev.Ancestors {
		if i == 0 {
			ev.Proc.PPID = ev.Ancestors[0].PID
		}
		if i+1 < len(ev.Ancestors) {
			ev.Ancestors[i].PPID = ev.Ancestors[i+1].PID
		}
	}
	if len(te.Std) > 3 {
		return nil, errors.New("std has fds 0, 1 and 2 only")
	}
	for i, s := range te.Std {
		fd, err := parseStd(s)
		if err != nil {
			return nil, fmt.Errorf("std[%d]: %w", i, err)
		}
		ev.Std[i] = fd
	}
	if te.Net != nil {
		c := &Conn{Proto: te.Net.Proto}
		var err error
		if te.Net.Remote != "" {
			if c.Remote, err = netip.ParseAddrPort(te.Net.Remote); err != nil {
				return nil, fmt.Errorf("net.remote: %w", err)
			}
		}
		if te.Net.Local != "" {
			if c.Local, err = netip.ParseAddrPort(te.Net.Local); err != nil {
				return nil, fmt.Errorf("net.local: %w", err)
			}
		}
		ev.Net = c
	}
	if te.File != nil {
		ev.File = &FileOp{Path: te.File.Path, Op: te.File.Op, Mode: te.File.Mode}
	}
	return ev, nil
}

func (tp TestProcess) process(pid int32) Process {
	p := Process{PID: pid, Exe: tp.Exe, Args: tp.Args, Cwd: tp.Cwd, TTY: tp.TTY, ContainerID: tp.Container, AUID: UnsetUID}
	if tp.PID != 0 {
		p.PID = tp.PID
	}
	if tp.UID != nil {
		p.UID, p.EUID = *tp.UID, *tp.UID
	}
	if tp.EUID != nil {
		p.EUID = *tp.EUID
	}
	if tp.AUID != nil {
		p.AUID = *tp.AUID
	}
	p.GID, p.EGID = p.UID, p.EUID
	if p.Exe != "" {
		p.Comm = p.Name()
		if len(p.Comm) > 15 {
			p.Comm = p.Comm[:15]
		}
	}
	return p
}

func parseStd(s string) (StdFD, error) {
	typ, rest, _ := strings.Cut(strings.TrimSpace(s), " ")
	for t, name := range fdTypeNames {
		if name == typ {
			fd := StdFD{Type: FDType(t)}
			if rest != "" {
				ap, err := netip.ParseAddrPort(strings.TrimSpace(rest))
				if err != nil {
					return fd, err
				}
				fd.Remote = ap
			}
			return fd, nil
		}
	}
	return StdFD{}, fmt.Errorf("%q: want tty, pipe, file, null, unix or \"socket IP:PORT\"", s)
}
