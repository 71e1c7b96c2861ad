package behavior

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// maxChain is how many processes of the ancestry a finding carries.
const maxChain = 16

// buildFinding describes a match: the process and its ancestry, the event's details and, for a
// sequence, every step.
func buildFinding(r *Rule, c *evalCtx, p *partial) finding.Finding {
	ev := c.ev
	title := r.Title + ": " + defaultSubject(c)
	if r.output != "" {
		if t := strings.TrimSpace(render(r.output, c)); t != "" {
			title = t
		}
	}
	f := finding.Finding{
		ID:       finding.NewID(),
		RuleID:   r.ID,
		Category: finding.CategoryBehavior,
		Severity: r.Severity,
		Title:    clip(oneLine(title), finding.MaxTitle),
		Time:     ev.Time,
		Action:   clean(r.Action),
		MITRE:    r.MITRE,
		DedupKey: clip(dedupKey(ev), finding.MaxDedupKey),
	}
	evd := &f.Evidence
	evd.Count = 1
	evd.Source = "kernel:" + ev.Kind.String()
	evd.Fields = map[string]string{"kind": ev.Kind.String(), "rule_title": r.Title}
	if ev.Proc.Exe != "" {
		evd.Fields["exe"] = ev.Proc.Exe
	}
	if ev.Proc.ContainerID != "" {
		evd.Fields["container"] = ev.Proc.ContainerID
	}
	if ev.Proc.TTY != "" {
		evd.Fields["tty"] = ev.Proc.TTY
	}
	if ev.Proc.AUID != UnsetUID {
		evd.Fields["auid"] = formatUint(ev.Proc.AUID)
	}
	if ev.Net != nil {
		evd.Fields["proto"] = ev.Net.Proto
		if ev.Net.Remote.IsValid() {
			evd.Fields["remote"] = unmap(ev.Net.Remote).String()
		}
		if ev.Net.Local.IsValid() {
			evd.Fields["local"] = unmap(ev.Net.Local).String()
		}
		if ev.Kind == KindAccept && ev.Net.Remote.IsValid() {
			evd.SourceIP = ev.Net.Remote.Addr().Unmap().String()
		}
	}
	if ev.File != nil {
		evd.Path = clean(ev.File.Path)
		evd.Fields["file_op"] = ev.File.Op
		if ev.File.Op == "chmod" {
			evd.Fields["file_mode"] = fmt.Sprintf("%#o", ev.File.Mode)
		}
	} else if ev.Proc.Exe != "" {
		evd.Path = clean(ev.Proc.Exe)
	}
	if peer, ok := ev.SocketPeer(); ok {
		evd.Fields["std_remote"] = peer.String()
	}
	if ev.Kind == KindExec {
		evd.Fields["std"] = ev.Std[0].Type.String() + "," + ev.Std[1].Type.String() + "," + ev.Std[2].Type.String()
	}
	if p == nil {
		evd.Lines = []string{clip(eventLine(c), finding.MaxLineLen)}
	} else {
		for i, s := range p.steps {
			if i < finding.MaxLines {
				evd.Lines = append(evd.Lines, clip(fmt.Sprintf("step %d %s: %s", i+1, s.time.UTC().Format(time.RFC3339), s.line), finding.MaxLineLen))
			}
			evd.Fields["step"+strconv.Itoa(i+1)+"_pid"] = strconv.Itoa(int(s.proc.PID))
		}
		evd.Fields["sequence_scope"] = r.seq.scope.String()
		evd.Fields["sequence_window"] = r.seq.window.String()
		evd.Fields["sequence_span"] = ev.Time.Sub(p.start).String()
		if len(p.keys) > 0 {
			evd.Fields["sequence_key"] = strings.Join(p.keys, " ")
		}
	}
	for k, v := range evd.Fields {
		evd.Fields[k] = clip(clean(v), finding.MaxLineLen)
	}
	evd.Process = append(evd.Process, chainEntry(&ev.Proc))
	for i := range ev.Ancestors {
		if len(evd.Process) >= maxChain {
			break
		}
		evd.Process = append(evd.Process, chainEntry(&ev.Ancestors[i]))
	}
	return f
}

func chainEntry(p *Process) finding.Process {
	fp := finding.Process{PID: int(p.PID), PPID: int(p.PPID), Exe: clean(p.Exe), Cmdline: clip(clean(p.Cmdline()), finding.MaxLineLen),
		Cwd: clean(p.Cwd), UID: int(p.UID), EUID: int(p.EUID)}
	if !p.Start.IsZero() {
		fp.Start = p.Start.UTC().Format(time.RFC3339Nano)
	}
	return fp
}

// defaultSubject names the process and what it did, for rules without an output template.
func defaultSubject(c *evalCtx) string {
	ev := c.ev
	name := ev.Proc.Name()
	switch ev.Kind {
	case KindConnect, KindAccept:
		if ev.Net != nil {
			return fmt.Sprintf("%s %s %s %s", name, ev.Kind, ev.Net.Proto, unmap(ev.Net.Remote))
		}
	case KindFile:
		if ev.File != nil {
			return fmt.Sprintf("%s %s %s", name, ev.File.Op, ev.File.Path)
		}
	}
	return fmt.Sprintf("%s (%s)", name, clip(c.procCmdline(), 200))
}

// eventLine is one line of evidence for an event: the command line of an exec, or what the
// process did.
func eventLine(c *evalCtx) string {
	ev := c.ev
	who := fmt.Sprintf("%s[%d]", ev.Proc.Name(), ev.Proc.PID)
	switch ev.Kind {
	case KindExec:
		return clean(c.procCmdline())
	case KindConnect, KindAccept:
		if ev.Net != nil {
			return clean(fmt.Sprintf("%s %s %s %s", who, ev.Kind, ev.Net.Proto, unmap(ev.Net.Remote)))
		}
	case KindFile:
		if ev.File != nil {
			return clean(fmt.Sprintf("%s %s %s", who, ev.File.Op, ev.File.Path))
		}
	}
	return clean(who + " " + ev.Kind.String())
}

// dedupKey folds repeats of one rule by the same program: the executable, the container, and
// the changed file or the peer when there is one.
func dedupKey(ev *Event) string {
	k := "exe=" + clean(ev.Proc.Exe)
	if ev.Proc.Exe == "" {
		k = "comm=" + clean(ev.Proc.Comm)
	}
	if ev.Proc.ContainerID != "" {
		k += " container=" + clean(ev.Proc.ContainerID)
	}
	if ev.File != nil {
		k += " path=" + clean(ev.File.Path)
	}
	if ev.Net != nil && ev.Net.Remote.IsValid() {
		k += " remote=" + ev.Net.Remote.Addr().Unmap().String()
	}
	return k
}

// unmap shows an IPv4-mapped IPv6 peer as the IPv4 address it is.
func unmap(ap netip.AddrPort) netip.AddrPort {
	if !ap.IsValid() {
		return ap
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// clean removes NUL bytes, which the console's store cannot hold in text columns.
func clean(s string) string {
	if strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(s, "\x00", "")
}

func oneLine(s string) string {
	s = clean(s)
	if strings.ContainsAny(s, "\n\r") {
		s = strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
	}
	return s
}

// clip cuts s to at most n bytes without splitting a UTF-8 sequence.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
