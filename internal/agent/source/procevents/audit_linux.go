package procevents

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	libaudit "github.com/elastic/go-libaudit/v2"
	"github.com/elastic/go-libaudit/v2/rule"
	"github.com/elastic/go-libaudit/v2/rule/flags"
	"golang.org/x/sys/unix"

	"github.com/palisade-cwpp/palisade/internal/agent/source"
	"github.com/palisade-cwpp/palisade/internal/detect/behavior"
)

// Source reads process events from the audit subsystem.
type Source struct {
	cfg     Config
	log     *slog.Logger
	control *libaudit.AuditClient // status and rules
	recv    *nlSocket
	owner   *libaudit.AuditClient // set when this source registered as the audit daemon
	mode    string
	rules   [][]byte // installed by this source, removed on close
	restore []func() error
	lost0   uint32 // kernel lost counter at start

	conn     *connSocket // the proc connector, when audit could not be used
	fallback string      // why audit could not be used

	stats     Stats // atomics
	closeOnce sync.Once
}

// Open installs the source's audit rules and starts receiving. When audit cannot be used here
// (no kernel support, no privilege, rules locked) it falls back to the proc connector, unless
// cfg.NoFallback; Fallback then says why. It fails with an error matching
// source.ErrUnavailable when neither works.
func Open(cfg Config, log *slog.Logger) (*Source, error) {
	cfg = cfg.withDefaults()
	if cfg.Socket == "proc-connector" {
		return openConnector(cfg, log, "configured (socket: proc-connector)")
	}
	s, err := openAudit(cfg, log)
	var ue *source.UnavailableError
	if err != nil && errors.As(err, &ue) && !cfg.NoFallback {
		if c, cerr := openConnector(cfg, log, ue.Reason); cerr == nil {
			return c, nil
		}
	}
	return s, err
}

func openAudit(cfg Config, log *slog.Logger) (*Source, error) {
	unavailable := func(reason string, err error) error {
		return &source.UnavailableError{Source: "process-events", Reason: reason, Err: err}
	}
	control, err := libaudit.NewAuditClient(nil)
	if err != nil {
		return nil, unavailable("audit netlink socket: "+err.Error(), err)
	}
	s := &Source{cfg: cfg, log: log, control: control}
	fail := func(err error) (*Source, error) {
		s.Close()
		return nil, err
	}
	st, err := control.GetStatus()
	if err != nil {
		return fail(unavailable("audit status: "+err.Error()+" (needs CAP_AUDIT_CONTROL)", err))
	}
	if st.Enabled == 2 {
		return fail(unavailable("audit rules are locked (enabled=2): rules cannot be added until reboot", nil))
	}
	s.lost0 = st.Lost
	daemon := st.PID != 0 && processAlive(int(st.PID))
	s.mode = cfg.Socket
	if s.mode == "auto" {
		s.mode = "unicast"
		if daemon {
			s.mode = "multicast"
		}
	}
	switch s.mode {
	case "multicast":
		s.recv, err = openNetlink(1) // AUDIT_NLGRP_READLOG
	case "unicast":
		if daemon {
			return fail(unavailable(fmt.Sprintf("audit daemon (pid %d) owns the audit socket; use socket: multicast", st.PID), nil))
		}
		s.recv, err = openNetlink(0)
	default:
		return fail(fmt.Errorf("procevents: socket %q: want auto, unicast or multicast", cfg.Socket))
	}
	if err != nil {
		return fail(unavailable("audit receive socket: "+err.Error(), err))
	}
	if s.mode == "unicast" {
		s.owner = &libaudit.AuditClient{Netlink: s.recv}
		if err := s.owner.SetPID(libaudit.WaitForReply); err != nil {
			s.owner = nil
			return fail(unavailable("register as audit receiver: "+err.Error(), err))
		}
		// Never make a process wait for the agent: a full backlog drops (and counts) records.
		if err := control.SetBacklogWaitTime(0, libaudit.WaitForReply); err == nil {
			old := st.BacklogWaitTime
			s.restore = append(s.restore, func() error { return control.SetBacklogWaitTime(int32(old), libaudit.WaitForReply) })
		}
		if st.BacklogLimit < cfg.Backlog {
			if err := control.SetBacklogLimit(cfg.Backlog, libaudit.WaitForReply); err == nil {
				old := st.BacklogLimit
				s.restore = append(s.restore, func() error { return control.SetBacklogLimit(old, libaudit.WaitForReply) })
			}
		}
	}
	if st.Enabled == 0 {
		if err := control.SetEnabled(true, libaudit.WaitForReply); err != nil {
			return fail(unavailable("enable audit: "+err.Error(), err))
		}
		s.restore = append(s.restore, func() error { return control.SetEnabled(false, libaudit.WaitForReply) })
	}
	for _, text := range s.ruleTexts() {
		if err := s.addRule(text); err != nil {
			return fail(unavailable("audit rule "+text+": "+err.Error(), err))
		}
	}
	log.Info("process events from audit", "socket", s.mode, "rules", len(s.rules))
	return s, nil
}

// ruleTexts are the audit rules of this source, in auditctl syntax.
func (s *Source) ruleTexts() []string {
	var out []string
	arches := []string{"b64"}
	if runtime.GOARCH == "amd64" || runtime.GOARCH == "arm64" {
		arches = append(arches, "b32")
	}
	for _, a := range arches {
		out = append(out, "-a always,exit -F arch="+a+" -S execve,execveat -k "+keyExec)
	}
	if !s.cfg.NoNetwork {
		// Internet sockaddrs are 16 (IPv4) or 28 (IPv6) bytes: unix-domain connects (logging,
		// name service) stay in the kernel. A non-blocking connect returns EINPROGRESS.
		out = append(out,
			"-a always,exit -F arch=b64 -S connect -F a2>=16 -F a2<=28 -F success=1 -k "+keyNet,
			"-a always,exit -F arch=b64 -S connect -F a2>=16 -F a2<=28 -F exit=-115 -k "+keyNet,
			"-a always,exit -F arch=b64 -S accept,accept4 -F success=1 -k "+keyNet)
	}
	for _, p := range s.cfg.Watch {
		if _, err := os.Stat(p); err != nil && p != "/etc/ld.so.preload" {
			continue // ld.so.preload matters most when it appears
		}
		out = append(out, "-w "+p+" -p wa -k "+keyFile)
	}
	return out
}

func (s *Source) addRule(text string) error {
	r, err := flags.Parse(text)
	if err != nil {
		return err
	}
	b, err := rule.Build(r)
	if err != nil {
		return err
	}
	err = s.control.AddRule(b)
	if err != nil && err.Error() == "rule exists" {
		err = nil // left by an agent that did not stop cleanly; ours all the same
	}
	if err != nil && strings.Contains(text, "arch=b32") {
		s.log.Debug("no 32-bit audit rule", "err", err) // a kernel without 32-bit syscalls
		return nil
	}
	if err == nil {
		s.rules = append(s.rules, b)
	}
	return err
}

// Mode says how events are received: "unicast" or "multicast" (audit), or "proc-connector".
func (s *Source) Mode() string { return s.mode }

// Fallback says why audit is not used, when the source runs on the proc connector: then
// short-lived processes may lose their argv, and there are no connect, accept or file events.
func (s *Source) Fallback() string { return s.fallback }

// Stats returns the counters so far.
func (s *Source) Stats() Stats {
	st := Stats{
		Records: atomic.LoadUint64(&s.stats.Records), Events: atomic.LoadUint64(&s.stats.Events),
		Shed: atomic.LoadUint64(&s.stats.Shed), KernelLost: atomic.LoadUint64(&s.stats.KernelLost),
		Overruns: atomic.LoadUint64(&s.stats.Overruns), Malformed: atomic.LoadUint64(&s.stats.Malformed),
		Incomplete: atomic.LoadUint64(&s.stats.Incomplete),
	}
	return st
}

// Close removes the source's rules, gives the audit socket back and restores the kernel
// settings it changed. Run calls it on return.
func (s *Source) Close() error {
	var errs []error
	s.closeOnce.Do(func() {
		if s.conn != nil {
			errs = append(errs, s.conn.Close())
		}
		if s.control == nil {
			return
		}
		for _, r := range s.rules {
			if err := s.control.DeleteRule(r); err != nil {
				errs = append(errs, fmt.Errorf("delete audit rule: %w", err))
			}
		}
		for i := len(s.restore) - 1; i >= 0; i-- {
			if err := s.restore[i](); err != nil {
				errs = append(errs, err)
			}
		}
		if s.owner != nil {
			errs = append(errs, s.owner.Close()) // unsets the audit PID, closes recv
		} else if s.recv != nil {
			errs = append(errs, s.recv.Close())
		}
		errs = append(errs, s.control.Close())
	})
	return errors.Join(errs...)
}

// Run delivers events to emit until ctx ends, then closes the source. emit runs on the
// caller's goroutine; when it is slower than the host, events are shed and counted.
func (s *Source) Run(ctx context.Context, emit func(*behavior.Event)) error {
	defer s.Close()
	queue := make(chan pendingEvent, s.cfg.Queue)
	readErr := make(chan error, 1)
	go func() {
		if s.conn != nil {
			readErr <- s.readConnector(ctx, queue)
			return
		}
		readErr <- s.read(ctx, queue)
	}()

	fs := procfs{root: s.cfg.Proc}
	t := newTree(fs, s.cfg.MaxProcesses)
	statusTick := time.NewTicker(10 * time.Second)
	defer statusTick.Stop()
	sweepTick := time.NewTicker(30 * time.Second)
	defer sweepTick.Stop()
	delay := time.NewTimer(time.Hour)
	defer delay.Stop()
	armed := false
	var held []pendingEvent // FIFO: every event waits the same delay
	for {
		if len(held) > 0 && !armed {
			delay.Reset(time.Until(held[0].due))
			armed = true
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-readErr:
			if ctx.Err() != nil {
				return nil
			}
			return err
		case pe := <-queue:
			held = append(held, pe)
			continue
		case <-delay.C:
			armed = false
		case <-statusTick.C:
			if s.control == nil {
				continue
			}
			if st, err := s.control.GetStatus(); err == nil {
				atomic.StoreUint64(&s.stats.KernelLost, uint64(st.Lost-s.lost0))
			}
			continue
		case <-sweepTick.C:
			t.sweep(time.Now())
			continue
		}
		now := time.Now()
		for len(held) > 0 && !held[0].due.After(now) {
			pe := held[0]
			held[0] = pendingEvent{}
			held = held[1:]
			if !s.enrich(t, fs, pe, now) {
				atomic.AddUint64(&s.stats.Incomplete, 1)
				continue
			}
			atomic.AddUint64(&s.stats.Events, 1)
			emit(pe.ev)
		}
		if len(held) == 0 {
			held = nil // let the backing array go after a burst
		}
	}
}

// enrich adds what /proc knows: the process table entry, ancestors, container, descriptors.
// It returns false for an event that cannot be completed (a proc-connector exec of a process
// that already exited).
func (s *Source) enrich(t *tree, fs procfs, pe pendingEvent, now time.Time) bool {
	ev := pe.ev
	switch ev.Kind {
	case behavior.KindExec:
		if s.conn != nil { // the proc connector names the process only
			p, ok := fs.process(ev.Proc.PID)
			if !ok {
				return false
			}
			p.Start = ev.Time
			ev.Proc = p
		}
		var alive bool
		ev.Std, alive = fs.std(ev.Proc.PID)
		if alive { // most short-lived processes are gone by now: no more /proc reads for them
			ev.Proc.ContainerID = fs.containerID(ev.Proc.PID)
		}
		t.exec(ev.Proc, now)
	default:
		known, ok := t.get(ev.Proc.PID, now)
		if ok {
			// The audit record has the current credentials; the table has argv and start.
			ev.Proc.Args, ev.Proc.Start, ev.Proc.ContainerID = known.Args, known.Start, known.ContainerID
		}
		if ev.Kind == behavior.KindConnect {
			ev.Std, _ = fs.std(ev.Proc.PID)
		}
		if ev.Kind == behavior.KindAccept {
			if peer, ok := fs.peer(ev.Proc.PID, pe.acceptFD); ok {
				ev.Net.Remote = peer
			}
			ev.Net.Proto = "inet"
		}
	}
	ev.Ancestors = t.ancestors(ev.Proc.PPID, now)
	return true
}

// read receives records until ctx ends, assembling them into events for Run.
func (s *Source) read(ctx context.Context, out chan<- pendingEvent) error {
	a := newAssembler()
	batch := newRecvBatch(64)
	lastExpire := time.Now()
	var reported uint64 // assembler drops already counted
	for ctx.Err() == nil {
		n, err := s.recv.receiveBatch(batch)
		switch {
		case err == nil:
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.ENOBUFS):
			atomic.AddUint64(&s.stats.Overruns, 1)
			continue
		default:
			return fmt.Errorf("audit receive: %w", err)
		}
		for i := 0; i < n; i++ {
			typ, data, ok := batch.message(i)
			if !ok {
				continue
			}
			atomic.AddUint64(&s.stats.Records, 1)
			g := a.push(typ, data)
			if g == nil {
				continue
			}
			if ev := g.event(); ev != nil {
				select {
				case out <- pendingEvent{ev: ev, acceptFD: g.acceptFD, due: time.Now().Add(s.cfg.Delay)}:
				default:
					atomic.AddUint64(&s.stats.Shed, 1)
				}
			}
		}
		if n > 0 && n < len(batch.msgs)/2 {
			// The kernel hands records over as processes make them; letting a few milliseconds
			// of them queue up turns thousands of wake-ups a second into a hundred.
			time.Sleep(batchWait)
		}
		if now := time.Now(); now.Sub(lastExpire) > time.Second {
			a.expire(now, 5*time.Second)
			lastExpire = now
			atomic.StoreUint64(&s.stats.Malformed, a.malformed)
			atomic.AddUint64(&s.stats.Incomplete, a.dropped-reported)
			reported = a.dropped
		}
	}
	return nil
}

func processAlive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// nlSocket is an audit netlink socket with a receive timeout, so the reader notices when its
// context ends. It satisfies libaudit.NetlinkSendReceiver, so go-libaudit can register it as
// the audit daemon's socket.
type nlSocket struct {
	fd  int
	seq atomic.Uint32
}

func openNetlink(groups uint32) (*nlSocket, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_AUDIT)
	if err != nil {
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind: %w", err)
	}
	// A large buffer absorbs exec storms; FORCE needs CAP_NET_ADMIN, the plain one is capped.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 16<<20)
	}
	tv := unix.NsecToTimeval(int64(250 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &nlSocket{fd: fd}, nil
}

// recvBatch is the buffers of one recvmmsg call: an exec is eight audit records, each its own
// netlink message, so reading them one system call at a time would cost more than parsing them.
type recvBatch struct {
	slot  int
	buf   []byte
	msgs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrNetlink
}

type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// batchWait is how long the reader lets records queue after a small batch.
const batchWait = 10 * time.Millisecond

// maxRecord is the kernel's largest audit record (MAX_AUDIT_MESSAGE_LENGTH) plus its header.
const maxRecord = 8970 + unix.NLMSG_HDRLEN

func newRecvBatch(n int) *recvBatch {
	b := &recvBatch{slot: maxRecord, buf: make([]byte, n*maxRecord), msgs: make([]mmsghdr, n),
		iovs: make([]unix.Iovec, n), names: make([]unix.RawSockaddrNetlink, n)}
	for i := range b.msgs {
		b.iovs[i].Base = &b.buf[i*b.slot]
		b.iovs[i].SetLen(b.slot)
		b.msgs[i].hdr.Iov = &b.iovs[i]
		b.msgs[i].hdr.SetIovlen(1)
		b.msgs[i].hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
	}
	return b
}

// receiveBatch waits for at least one message (up to the socket's receive timeout) and takes
// every message already queued, up to the batch size.
func (n *nlSocket) receiveBatch(b *recvBatch) (int, error) {
	for i := range b.msgs {
		b.msgs[i].hdr.Namelen = unix.SizeofSockaddrNetlink
		b.msgs[i].hdr.Flags = 0
		b.msgs[i].len = 0
	}
	r, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(n.fd), uintptr(unsafe.Pointer(&b.msgs[0])), uintptr(len(b.msgs)),
		unix.MSG_WAITFORONE, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}

// message returns the type and text of message i of the last batch; ok is false for messages
// that did not come from the kernel or are too short.
func (b *recvBatch) message(i int) (uint16, []byte, bool) {
	if b.names[i].Pid != 0 {
		return 0, nil, false // not from the kernel
	}
	m := b.buf[i*b.slot : i*b.slot+int(b.msgs[i].len)]
	if len(m) < unix.NLMSG_HDRLEN {
		return 0, nil, false
	}
	typ := binary.NativeEndian.Uint16(m[4:])
	data := m[unix.NLMSG_HDRLEN:]
	for len(data) > 0 && (data[len(data)-1] == 0 || data[len(data)-1] == '\n') {
		data = data[:len(data)-1]
	}
	return typ, data, true
}

func (n *nlSocket) Send(msg syscall.NetlinkMessage) (uint32, error) { return n.send(msg, 0) }
func (n *nlSocket) SendNoWait(msg syscall.NetlinkMessage) (uint32, error) {
	return n.send(msg, unix.MSG_DONTWAIT)
}

func (n *nlSocket) send(msg syscall.NetlinkMessage, flags int) (uint32, error) {
	msg.Header.Seq = n.seq.Add(1)
	msg.Header.Len = uint32(unix.NLMSG_HDRLEN + len(msg.Data))
	b := make([]byte, msg.Header.Len)
	h, ne := msg.Header, binary.NativeEndian
	ne.PutUint32(b[0:], h.Len)
	ne.PutUint16(b[4:], h.Type)
	ne.PutUint16(b[6:], h.Flags)
	ne.PutUint32(b[8:], h.Seq)
	ne.PutUint32(b[12:], h.Pid)
	copy(b[unix.NLMSG_HDRLEN:], msg.Data)
	return msg.Header.Seq, unix.Sendto(n.fd, b, flags, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
}

// Receive serves go-libaudit's request/reply exchanges (registration, unregistration).
func (n *nlSocket) Receive(nonBlocking bool, p libaudit.NetlinkParser) ([]syscall.NetlinkMessage, error) {
	flags := 0
	if nonBlocking {
		flags = unix.MSG_DONTWAIT
	}
	buf := make([]byte, 1<<16)
	nr, from, err := unix.Recvfrom(n.fd, buf, flags)
	if err != nil {
		return nil, err
	}
	if nl, ok := from.(*unix.SockaddrNetlink); !ok || nl.Pid != 0 {
		return nil, errors.New("message not from the kernel")
	}
	return p(buf[:nr])
}

func (n *nlSocket) Close() error { return unix.Close(n.fd) }
