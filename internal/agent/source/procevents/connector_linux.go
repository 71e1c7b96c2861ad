package procevents

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/palisade-cwpp/palisade/internal/agent/source"
	"github.com/palisade-cwpp/palisade/internal/detect/behavior"
)

// The proc connector (linux/cn_proc.h) tells which process executed, not what: the argv, exe
// and credentials are read from /proc afterwards, and are gone when the process already
// exited. It is the fallback for hosts where audit cannot be used, and says so.
const (
	cnIdxProc          = 1
	cnValProc          = 1
	procCnMcastListen  = 1
	procEventExec      = 0x00000002
	cnMsgLen           = 20 // struct cn_msg without data
	procEventHeaderLen = 16 // what, cpu, timestamp_ns
)

type connSocket struct{ fd int }

func (c *connSocket) Close() error { return unix.Close(c.fd) }

func openConnector(cfg Config, log *slog.Logger, why string) (*Source, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, &source.UnavailableError{Source: "process-events", Reason: "audit unavailable (" + why + ") and proc connector: " + err.Error(), Err: err}
	}
	c := &connSocket{fd: fd}
	fail := func(what string, err error) (*Source, error) {
		c.Close()
		return nil, &source.UnavailableError{Source: "process-events", Reason: "audit unavailable (" + why + ") and proc connector " + what + ": " + err.Error(), Err: err}
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc, Pid: 0}); err != nil {
		return fail("bind", err)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
	}
	tv := unix.NsecToTimeval(int64(250 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fail("socket options", err)
	}
	// nlmsghdr + cn_msg + PROC_CN_MCAST_LISTEN
	msg := make([]byte, unix.NLMSG_HDRLEN+cnMsgLen+4)
	ne := binary.NativeEndian
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], unix.NLMSG_DONE)
	ne.PutUint32(msg[12:], uint32(unix.Getpid()))
	cn := msg[unix.NLMSG_HDRLEN:]
	ne.PutUint32(cn[0:], cnIdxProc)
	ne.PutUint32(cn[4:], cnValProc)
	ne.PutUint16(cn[16:], 4)
	ne.PutUint32(cn[cnMsgLen:], procCnMcastListen)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fail("subscribe", err)
	}
	log.Warn("process events from the proc connector: audit is unavailable; argv of short-lived processes may be lost, no network or file events", "why", why)
	return &Source{cfg: cfg, log: log, conn: c, mode: "proc-connector", fallback: why}, nil
}

// readConnector turns exec notifications into events; Run reads the rest from /proc.
func (s *Source) readConnector(ctx context.Context, out chan<- pendingEvent) error {
	buf := make([]byte, 64<<10)
	ne := binary.NativeEndian
	for ctx.Err() == nil {
		n, from, err := unix.Recvfrom(s.conn.fd, buf, 0)
		switch {
		case err == nil:
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ENOBUFS):
			atomic.AddUint64(&s.stats.Overruns, 1)
			continue
		default:
			return fmt.Errorf("proc connector receive: %w", err)
		}
		if nl, ok := from.(*unix.SockaddrNetlink); !ok || nl.Pid != 0 {
			continue
		}
		for m := buf[:n]; len(m) >= unix.NLMSG_HDRLEN; {
			l := int(ne.Uint32(m[0:]))
			if l < unix.NLMSG_HDRLEN || l > len(m) {
				atomic.AddUint64(&s.stats.Malformed, 1)
				break
			}
			body := m[unix.NLMSG_HDRLEN:l]
			m = m[min(nlmAlign(l), len(m)):]
			atomic.AddUint64(&s.stats.Records, 1)
			if len(body) < cnMsgLen+procEventHeaderLen+8 || ne.Uint32(body[0:]) != cnIdxProc {
				continue
			}
			ev := body[cnMsgLen:]
			if ne.Uint32(ev[0:]) != procEventExec {
				continue
			}
			tgid := int32(ne.Uint32(ev[procEventHeaderLen+4:]))
			e := &behavior.Event{Kind: behavior.KindExec, Time: time.Now(), Proc: behavior.Process{PID: tgid}}
			select {
			case out <- pendingEvent{ev: e, due: time.Now()}: // read /proc at once: the process may not live long
			default:
				atomic.AddUint64(&s.stats.Shed, 1)
			}
		}
	}
	return nil
}

func nlmAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }
