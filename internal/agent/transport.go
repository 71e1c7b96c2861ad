package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/palisade-cwpp/palisade/internal/agent/hostinfo"
	"github.com/palisade-cwpp/palisade/internal/finding"
	pb "github.com/palisade-cwpp/palisade/proto/palisade/v1"
)

// Reconnect backoff: exponential from backoffMin to backoffMax with full jitter, reset after a
// connection that lasted. A refused identity (revoked host) waits the maximum every time.
const (
	backoffMin = 500 * time.Millisecond
	backoffMax = 60 * time.Second
)

func (a *Agent) connectLoop(ctx context.Context) error {
	cc, err := grpc.NewClient(a.id.Server,
		grpc.WithTransportCredentials(credentials.NewTLS(a.id.tlsConfig())),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(8<<20)),
	)
	if err != nil {
		return fmt.Errorf("console address %q: %w", a.id.Server, err)
	}
	defer cc.Close()
	client := pb.NewAgentServiceClient(cc)
	backoff := backoffMin
	for {
		start := time.Now()
		err := a.session(ctx, client)
		if ctx.Err() != nil {
			a.writeStatus(false, nil)
			return nil
		}
		a.writeStatus(false, err)
		wait := time.Duration(rand.Int64N(int64(backoff)) + 1)
		if st, ok := status.FromError(err); ok && (st.Code() == codes.PermissionDenied || st.Code() == codes.Unauthenticated) {
			a.log.Error("console refused this agent", "reason", st.Message())
			wait = backoffMax
		} else {
			a.log.Warn("console connection lost", "err", err, "retry_in", wait.Round(time.Millisecond))
		}
		if time.Since(start) > 2*backoffMax {
			backoff = backoffMin
		} else {
			backoff = min(backoff*2, backoffMax)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// session runs one stream until it fails. Findings are sent from the spool after the last
// acknowledged sequence number, so whatever a broken stream lost in flight is sent again.
func (a *Agent) session(ctx context.Context, client pb.AgentServiceClient) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stream, err := client.Connect(ctx)
	if err != nil {
		return err
	}
	facts, err := hostinfo.Collect(Version)
	if err != nil {
		a.log.Warn("collect host facts", "err", err)
	}
	if err := stream.Send(&pb.AgentMessage{Body: &pb.AgentMessage_Hello{Hello: &pb.Hello{
		Facts: factsToProto(facts), AckedSeq: a.spool.AckedSeq()}}}); err != nil {
		return err
	}
	acks := make(chan uint64, 16)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				cancel(err)
				return
			}
			switch b := m.GetBody().(type) {
			case *pb.ConsoleMessage_Ack:
				if b.Ack.GetRejected() > 0 {
					a.log.Warn("console rejected malformed findings", "count", b.Ack.GetRejected())
				}
				select {
				case acks <- b.Ack.GetSeq():
				case <-ctx.Done():
					return
				}
			case *pb.ConsoleMessage_Task:
				a.log.Info("task received", "task", b.Task.GetTaskId(), "type", b.Task.GetType())
				// Tasks outlive the stream that brought them: they run under the agent's
				// context and report through a queue every session drains, so a reconnect
				// neither loses a result nor runs a resent task twice.
				a.tasks.start(a.runCtx, b.Task, func(u *pb.TaskUpdate) {
					select {
					case a.updates <- u:
					case <-a.runCtx.Done():
					}
				})
			case *pb.ConsoleMessage_Policy:
				a.applyPolicy(b.Policy)
			case *pb.ConsoleMessage_HashVerdicts:
				for _, f := range a.rep.answer(b.HashVerdicts, time.Now().UTC()) {
					if err := a.Emit(f); err != nil {
						a.log.Warn("reputation finding not spooled", "err", err)
					}
				}
			case *pb.ConsoleMessage_InventoryRequest:
				a.log.Info("console asks for the full package inventory", "reason", b.InventoryRequest.GetReason())
				a.requestFullInventory()
			case *pb.ConsoleMessage_Goodbye:
				cancel(status.Error(codes.PermissionDenied, b.Goodbye.GetReason()))
				return
			}
		}
	}()
	a.log.Info("connected to console")
	a.writeStatus(true, nil)
	err = a.sendLoop(ctx, stream, acks, a.updates)
	if errors.Is(err, io.EOF) {
		// The console ended the stream; its reason arrives through Recv.
		select {
		case <-ctx.Done():
			err = context.Cause(ctx)
		case <-time.After(5 * time.Second):
		}
	}
	return err
}

// sendLoop is the only goroutine that calls stream.Send after the hello.
func (a *Agent) sendLoop(ctx context.Context, stream pb.AgentService_ConnectClient, acks <-chan uint64, updates <-chan *pb.TaskUpdate) error {
	hb := time.NewTicker(a.cfg.HeartbeatInterval)
	defer hb.Stop()
	if err := a.sendHeartbeat(stream); err != nil {
		return err
	}
	lastHB := time.Now()
	var soon <-chan time.Time // a heartbeat held back by the once-a-second bound
	if err := a.sendBlocks(ctx, stream); err != nil {
		return err
	}
	a.rep.reconnected()
	a.requestFullInventory() // a new stream may reach a console that lost or never had it
	sent := a.spool.AckedSeq()
	for {
		// Take the wake-up channel before reading, so an append right after the read still wakes us.
		appended := a.spool.Wait()
		// Send what the spool holds beyond what is in flight, within the in-flight window.
		for sent-a.spool.AckedSeq() < uint64(a.cfg.InFlight) {
			recs, err := a.spool.Read(sent, a.cfg.BatchSize, 1<<20)
			if err != nil {
				return fmt.Errorf("read spool: %w", err)
			}
			if len(recs) == 0 {
				break
			}
			batch := &pb.FindingBatch{LastSeq: recs[len(recs)-1].Seq}
			for _, r := range recs {
				batch.Findings = append(batch.Findings, r.Data)
			}
			if err := stream.Send(&pb.AgentMessage{Body: &pb.AgentMessage_Findings{Findings: batch}}); err != nil {
				return err
			}
			sent = batch.LastSeq
		}
		if sent-a.spool.AckedSeq() >= uint64(a.cfg.InFlight) {
			appended = nil // window full: wait for an ack, not for more data
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case seq := <-acks:
			if err := a.spool.Ack(seq); err != nil {
				return fmt.Errorf("ack spool: %w", err)
			}
			a.spoolRecovered()
		case u := <-updates:
			if err := stream.Send(&pb.AgentMessage{Body: &pb.AgentMessage_TaskUpdate{TaskUpdate: u}}); err != nil {
				return err
			}
		case <-a.rep.ready:
			for q := a.rep.query(); q != nil; q = a.rep.query() {
				if err := stream.Send(&pb.AgentMessage{Body: &pb.AgentMessage_HashQuery{HashQuery: q}}); err != nil {
					return err
				}
			}
		case <-a.packages.ready:
			if err := a.sendInventory(stream); err != nil {
				return err
			}
		case <-a.blockReport:
			if err := a.sendBlocks(ctx, stream); err != nil {
				return err
			}
		case <-appended:
		case <-hb.C:
			if err := a.sendHeartbeat(stream); err != nil {
				return err
			}
			lastHB = time.Now()
			a.writeStatus(true, nil)
		case <-a.health.changes():
			// A component came up, degraded or stopped: the console hears it now, not at the
			// next tick (at most once a second however often states flap).
			if d := time.Second - time.Since(lastHB); d > 0 {
				if soon == nil {
					soon = time.After(d)
				}
				break
			}
			if err := a.sendHeartbeat(stream); err != nil {
				return err
			}
			lastHB = time.Now()
		case <-soon:
			soon = nil
			if err := a.sendHeartbeat(stream); err != nil {
				return err
			}
			lastHB = time.Now()
		}
	}
}

// spoolRecovered clears the degraded spool state once there is room again.
func (a *Agent) spoolRecovered() {
	st := a.spool.Stats()
	if st.Bytes < a.cfg.SpoolMaxBytes*9/10 {
		for _, cs := range a.health.snapshot() {
			if cs.Name == "spool" && cs.State != finding.StateRunning {
				a.health.set(finding.ComponentState{Name: "spool", Kind: "source", State: finding.StateRunning})
			}
		}
	}
}

func (a *Agent) sendBlocks(ctx context.Context, stream pb.AgentService_ConnectClient) error {
	return stream.Send(&pb.AgentMessage{Body: &pb.AgentMessage_Blocks{Blocks: a.activeBlocks(ctx)}})
}

func (a *Agent) sendHeartbeat(stream pb.AgentService_ConnectClient) error {
	s := a.budget.Sample()
	st := a.spool.Stats()
	cfg := a.budget.Config()
	hb := &pb.Heartbeat{
		TimeUnixMs: time.Now().UnixMilli(),
		Cost: &pb.AgentCost{
			CpuPercent: s.CPUPercent, RssBytes: s.RSSBytes,
			SpoolDepth: st.Depth, SpoolBytes: st.Bytes, SpoolDropped: st.Dropped,
			CpuBudgetPercent: cfg.CPUPercent, MemoryBudgetBytes: cfg.MemoryBytes,
			BudgetMode: a.budget.Mode(), ThrottledMs: uint64(s.Throttled.Milliseconds()),
		},
	}
	for _, cs := range a.health.snapshot() {
		hb.Components = append(hb.Components, &pb.ComponentState{Name: cs.Name, Kind: cs.Kind, State: cs.State, Reason: cs.Reason})
	}
	if err := stream.Send(&pb.AgentMessage{Body: &pb.AgentMessage_Heartbeat{Heartbeat: hb}}); err != nil {
		return errors.Join(errors.New("send heartbeat"), err)
	}
	return nil
}

func factsToProto(f finding.HostFacts) *pb.HostFacts {
	p := &pb.HostFacts{Hostname: f.Hostname, OsId: f.OSID, OsVersion: f.OSVersion, OsPretty: f.OSPretty, Kernel: f.Kernel,
		Arch: f.Arch, IpAddresses: f.IPAddresses, AgentVersion: f.AgentVersion, MachineId: f.MachineID}
	if !f.BootTime.IsZero() {
		p.BootTimeUnix = f.BootTime.Unix()
	}
	return p
}
