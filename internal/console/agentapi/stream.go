package agentapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/finding"
	"github.com/palisade-cwpp/palisade/internal/policy"
	pb "github.com/palisade-cwpp/palisade/proto/palisade/v1"
)

// conn is one agent's live stream.
type conn struct {
	hostID string
	group  string
	out    chan *pb.ConsoleMessage
	tasks  chan struct{}
	// policy wakes the sender to send the host's policy if it changed since the last one sent.
	policy      chan struct{}
	sentVersion string
	cancel      context.CancelCauseFunc

	closeOnce sync.Once
	// lastDropped is the spool drop count of the previous heartbeat, to report growth once.
	lastDropped uint64
	// inv tracks the inventory exchange on this stream.
	inv inventoryConn
}

func (c *conn) close(reason string) {
	c.closeOnce.Do(func() {
		select {
		case c.out <- &pb.ConsoleMessage{Body: &pb.ConsoleMessage_Goodbye{Goodbye: &pb.Goodbye{Reason: reason}}}:
		default:
		}
		// Give the sender a moment to deliver the goodbye before the stream is torn down.
		time.AfterFunc(200*time.Millisecond, func() { c.cancel(status.Error(codes.PermissionDenied, reason)) })
	})
}

// Connect serves one agent's stream until it ends.
func (s *Server) Connect(stream pb.AgentService_ConnectServer) error {
	h, err := s.authenticate(stream.Context())
	if err != nil {
		s.metrics.streamsRefused.Inc()
		return err
	}
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	c := &conn{hostID: h.ID, group: h.Group, out: make(chan *pb.ConsoleMessage, 64), tasks: make(chan struct{}, 1),
		policy: make(chan struct{}, 1), cancel: cancel, lastDropped: h.Status.SpoolDropped}
	s.mu.Lock()
	old := s.streams[h.ID]
	s.streams[h.ID] = c
	s.mu.Unlock()
	if old != nil {
		old.close("replaced by a newer connection from the same host")
	}
	s.metrics.connected.Inc()
	log := s.log.With("host", h.ID)
	log.Info("agent connected", "peer", peerAddr(stream.Context()))
	defer func() {
		s.mu.Lock()
		if s.streams[h.ID] == c {
			delete(s.streams, h.ID)
		}
		s.mu.Unlock()
		s.metrics.connected.Dec()
		log.Info("agent disconnected", "cause", context.Cause(ctx))
	}()

	errc := make(chan error, 2)
	go func() { errc <- s.send(ctx, stream, c) }()
	go func() { errc <- s.receive(ctx, stream, c, log) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		err = context.Cause(ctx)
	}
	cancel(err)
	return err
}

// send writes queued messages and dispatches pending tasks. It is the only goroutine calling
// stream.Send.
func (s *Server) send(ctx context.Context, stream pb.AgentService_ConnectServer, c *conn) error {
	tick := time.NewTicker(15 * time.Second) // catches tasks created through another path
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case m := <-c.out:
			if err := stream.Send(m); err != nil {
				return err
			}
			if m.GetGoodbye() != nil {
				return status.Error(codes.PermissionDenied, m.GetGoodbye().GetReason())
			}
		case <-c.tasks:
			if err := s.dispatch(ctx, stream, c.hostID); err != nil {
				return err
			}
		case <-c.policy:
			if err := s.sendPolicy(ctx, stream, c); err != nil {
				return err
			}
		case <-tick.C:
			if err := s.dispatch(ctx, stream, c.hostID); err != nil {
				return err
			}
			wake(c.policy) // retries a policy a store error kept from going out; cheap when unchanged
		}
	}
}

func (s *Server) dispatch(ctx context.Context, stream pb.AgentService_ConnectServer, hostID string) error {
	tasks, err := s.store.PendingTasks(ctx, hostID)
	if err != nil {
		s.log.Error("read pending tasks", "host", hostID, "err", err)
		return nil
	}
	for _, t := range tasks {
		// Mark first: if the send fails the host reconnects and RequeueDispatched resets it.
		if err := s.store.UpdateTaskHost(ctx, store.TaskHost{TaskID: t.ID, HostID: hostID, State: store.TaskDispatched}); err != nil {
			continue // finished or expired meanwhile
		}
		if err := stream.Send(&pb.ConsoleMessage{Body: &pb.ConsoleMessage_Task{Task: &pb.TaskAssign{
			TaskId: t.ID, Type: t.Type, Params: t.Params, CreatedBy: t.CreatedBy}}}); err != nil {
			return err
		}
		s.metrics.tasksDispatched.Inc()
	}
	return nil
}

func (s *Server) receive(ctx context.Context, stream pb.AgentService_ConnectServer, c *conn, log *slog.Logger) error {
	for {
		m, err := stream.Recv()
		if err != nil {
			return err
		}
		switch b := m.GetBody().(type) {
		case *pb.AgentMessage_Hello:
			facts := factsFromProto(b.Hello.GetFacts())
			if err := s.store.UpdateHostFacts(ctx, c.hostID, facts); err != nil {
				return status.Errorf(codes.Unavailable, "store facts: %v", err)
			}
			if err := s.store.RequeueDispatched(ctx, c.hostID); err != nil {
				return status.Errorf(codes.Unavailable, "requeue tasks: %v", err)
			}
			c.notify()
			wake(c.policy)
		case *pb.AgentMessage_Blocks:
			if err := s.storeBlocks(ctx, c.hostID, b.Blocks); err != nil {
				return status.Errorf(codes.Unavailable, "store blocks: %v", err)
			}
		case *pb.AgentMessage_Heartbeat:
			if err := s.heartbeat(ctx, c, b.Heartbeat); err != nil {
				return err
			}
		case *pb.AgentMessage_Findings:
			ack, err := s.ingest(ctx, c.hostID, b.Findings, log)
			if err != nil {
				// Not acknowledged: the agent keeps the batch and sends it again.
				return status.Errorf(codes.Unavailable, "store findings: %v", err)
			}
			select {
			case c.out <- &pb.ConsoleMessage{Body: &pb.ConsoleMessage_Ack{Ack: ack}}:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		case *pb.AgentMessage_HashQuery:
			m, err := s.answerHashes(ctx, b.HashQuery)
			if err != nil {
				return status.Errorf(codes.Unavailable, "reputation look-up: %v", err)
			}
			select {
			case c.out <- m:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		case *pb.AgentMessage_Inventory:
			if err := s.inventory(ctx, c, b.Inventory, log); err != nil {
				return err
			}
		case *pb.AgentMessage_TaskUpdate:
			s.taskUpdate(ctx, c.hostID, b.TaskUpdate, log)
		default:
			s.metrics.protocolErrors.Inc()
			log.Warn("unknown message from agent", "type", fmt.Sprintf("%T", b))
		}
	}
}

func (c *conn) notify() { wake(c.tasks) }

// wake signals ch without blocking; one pending signal is enough.
func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// sendPolicy sends the host's effective policy when it differs from the one last sent.
func (s *Server) sendPolicy(ctx context.Context, stream pb.AgentService_ConnectServer, c *conn) error {
	stored, _, err := s.EffectivePolicy(ctx, c.group)
	if err != nil {
		s.log.Error("read policy", "host", c.hostID, "err", err)
		return nil
	}
	p, err := policy.Parse(stored)
	if err != nil {
		s.log.Error("stored policy does not validate", "host", c.hostID, "err", err)
		return nil
	}
	body, version := p.ForHost(c.hostID, c.group).Encode()
	if version == c.sentVersion {
		return nil
	}
	if err := stream.Send(&pb.ConsoleMessage{Body: &pb.ConsoleMessage_Policy{Policy: &pb.Policy{Json: body, Version: version}}}); err != nil {
		return err
	}
	c.sentVersion = version
	return nil
}

// EffectivePolicy returns the policy for hosts of group: the group's, else the fleet's, else
// the built-in default.
func (s *Server) EffectivePolicy(ctx context.Context, group string) (body []byte, version string, err error) {
	sp, ok, err := s.store.EffectivePolicy(ctx, group)
	if err != nil {
		return nil, "", err
	}
	if !ok {
		body, version = policy.Default().Encode()
		return body, version, nil
	}
	return []byte(sp.Body), sp.Version, nil
}

// storeBlocks records a host's active blocks, dropping entries that do not parse.
func (s *Server) storeBlocks(ctx context.Context, hostID string, r *pb.BlockReport) error {
	var blocks []store.ActiveBlock
	for i, b := range r.GetBlocks() {
		if i == 100_000 {
			break
		}
		p, err := netip.ParsePrefix(b.GetPrefix())
		if err != nil {
			s.metrics.protocolErrors.Inc()
			continue
		}
		ab := store.ActiveBlock{Prefix: p.Masked().String(), Reason: clip(b.GetReason(), 512), Source: clip(b.GetSource(), 128)}
		if e := b.GetExpiresUnix(); e > 0 && e < maxUnixTime {
			ab.ExpiresAt = time.Unix(e, 0).UTC()
		}
		blocks = append(blocks, ab)
	}
	return s.store.ReplaceBlocks(ctx, hostID, clip(r.GetBackend(), 32), blocks)
}

func (s *Server) heartbeat(ctx context.Context, c *conn, hb *pb.Heartbeat) error {
	st := finding.AgentStatus{Time: time.Now().UTC()}
	if cost := hb.GetCost(); cost != nil {
		st.CPUPercent, st.RSSBytes = cost.GetCpuPercent(), cost.GetRssBytes()
		st.SpoolDepth, st.SpoolBytes, st.SpoolDropped = cost.GetSpoolDepth(), cost.GetSpoolBytes(), cost.GetSpoolDropped()
		st.CPUBudgetPercent, st.MemoryBudgetBytes = cost.GetCpuBudgetPercent(), cost.GetMemoryBudgetBytes()
		st.BudgetMode, st.ThrottledMS = clip(cost.GetBudgetMode(), 16), cost.GetThrottledMs()
	}
	for i, cs := range hb.GetComponents() {
		if i == 256 {
			break
		}
		st.Components = append(st.Components, finding.ComponentState{
			Name: clip(cs.GetName(), 64), Kind: clip(cs.GetKind(), 16), State: clip(cs.GetState(), 16), Reason: clip(cs.GetReason(), 512)})
	}
	// A full spool loses findings on the host; the operator must hear of it as an event. The
	// agent counts drops since it started, so a smaller count means it restarted.
	if st.SpoolDropped < c.lastDropped {
		c.lastDropped = 0
	}
	if st.SpoolDropped > c.lastDropped {
		lost := st.SpoolDropped - c.lastDropped
		c.lastDropped = st.SpoolDropped
		f := finding.Finding{
			ID: finding.NewID(), RuleID: "agent.spool-overflow", Category: finding.CategoryAgent, Severity: finding.SeverityHigh,
			Title: "Agent spool full: findings were dropped on the host",
			Host:  c.hostID, Time: st.Time, DedupKey: "spool",
			Action: "Restore the host's connection to the console, or raise spool.max_bytes in the agent configuration.",
			Evidence: finding.Evidence{Count: int(lost), Fields: map[string]string{
				"dropped_total": fmt.Sprint(st.SpoolDropped), "spool_bytes": fmt.Sprint(st.SpoolBytes)}},
		}
		if _, err := s.store.IngestFindings(ctx, c.hostID, []finding.Finding{f}, s.cfg.AggregationWindow); err != nil {
			return status.Errorf(codes.Unavailable, "store overflow event: %v", err)
		}
	}
	if err := s.store.TouchHost(ctx, c.hostID, st); err != nil {
		return status.Errorf(codes.Unavailable, "store heartbeat: %v", err)
	}
	s.metrics.heartbeats.Inc()
	return nil
}

func (s *Server) ingest(ctx context.Context, hostID string, batch *pb.FindingBatch, log *slog.Logger) (*pb.Ack, error) {
	start := time.Now()
	fs := make([]finding.Finding, 0, len(batch.GetFindings()))
	var rejected uint32
	for _, raw := range batch.GetFindings() {
		f, err := s.decodeFinding(raw, hostID)
		if err != nil {
			rejected++
			log.Warn("finding rejected", "err", err)
			continue
		}
		fs = append(fs, f)
	}
	res, err := s.store.IngestFindings(ctx, hostID, fs, s.cfg.AggregationWindow)
	if err != nil {
		return nil, err
	}
	s.metrics.findings.WithLabelValues("new").Add(float64(res.New))
	s.metrics.findings.WithLabelValues("aggregated").Add(float64(res.Aggregated))
	s.metrics.findings.WithLabelValues("duplicate").Add(float64(res.Duplicate))
	s.metrics.findings.WithLabelValues("rejected").Add(float64(rejected))
	s.metrics.ingestSeconds.Observe(time.Since(start).Seconds())
	return &pb.Ack{Seq: batch.GetLastSeq(), Rejected: rejected}, nil
}

var taskStates = map[string]bool{store.TaskRunning: true, store.TaskSucceeded: true, store.TaskFailed: true, store.TaskRejected: true}

func (s *Server) taskUpdate(ctx context.Context, hostID string, u *pb.TaskUpdate, log *slog.Logger) {
	if !taskStates[u.GetState()] {
		s.metrics.protocolErrors.Inc()
		log.Warn("task update with unknown state", "task", clip(u.GetTaskId(), 64), "state", clip(u.GetState(), 32))
		return
	}
	result := u.GetResult()
	if len(result) > 1<<20 {
		result = nil
	}
	th := store.TaskHost{TaskID: clip(u.GetTaskId(), 64), HostID: hostID, State: u.GetState(),
		Progress: int(min(u.GetProgress(), 100)), Message: clip(u.GetMessage(), 4096)}
	if len(result) > 0 {
		if !jsonValid(result) {
			th.Message = strings.TrimSpace(th.Message + " (result was not valid JSON and was dropped)")
		} else {
			th.Result = result
		}
	}
	if err := s.store.UpdateTaskHost(ctx, th); err != nil {
		log.Warn("task update not applied", "task", th.TaskID, "err", err)
	}
}

// maxHashQuery bounds one reputation query.
const maxHashQuery = 1000

// answerHashes looks up an agent's hashes in the reputation store. Malformed hashes are
// answered "unknown" without a look-up.
func (s *Server) answerHashes(ctx context.Context, q *pb.HashQuery) (*pb.ConsoleMessage, error) {
	hashes := q.GetSha256()
	if len(hashes) > maxHashQuery {
		s.metrics.protocolErrors.Inc()
		hashes = hashes[:maxHashQuery]
	}
	var valid []string
	for _, h := range hashes {
		if isSHA256(h) {
			valid = append(valid, strings.ToLower(h))
		}
	}
	found, err := s.store.LookupHashes(ctx, valid)
	if err != nil {
		return nil, err
	}
	byHash := make(map[string]store.HashVerdict, len(found))
	for _, v := range found {
		byHash[v.SHA256] = v
	}
	out := &pb.HashVerdicts{Id: q.GetId()}
	for _, h := range hashes {
		v, ok := byHash[strings.ToLower(h)]
		if !ok {
			v = store.HashVerdict{SHA256: clip(h, 64), Verdict: store.VerdictUnknown}
		}
		out.Verdicts = append(out.Verdicts, &pb.HashVerdict{Sha256: v.SHA256, Verdict: v.Verdict, Family: v.Family,
			Sources: uint32(v.Sources), Malicious: uint32(v.Malicious)})
	}
	s.metrics.hashLookups.Add(float64(len(hashes)))
	return &pb.ConsoleMessage{Body: &pb.ConsoleMessage_HashVerdicts{HashVerdicts: out}}, nil
}

func isSHA256(h string) bool {
	if len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i] | 0x20
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
