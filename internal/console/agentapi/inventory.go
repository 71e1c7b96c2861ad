package agentapi

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/finding"
	pb "github.com/palisade-cwpp/palisade/proto/palisade/v1"
)

// inventoryConn is one stream's view of the inventory exchange.
type inventoryConn struct {
	// awaitingFull is set once a full inventory was asked for: diffs are dropped until it comes.
	awaitingFull bool
	askedAt      time.Time
	// rejected counts packages refused as malformed since the last full inventory, so the
	// agent's totals, which include them, can still be checked.
	rejected int
}

// maxInventoryMessage bounds the packages of one message (agents send at most 2,000).
const maxInventoryMessage = 10_000

// inventory stores a full inventory or applies a diff, asking the agent for a full inventory
// when a diff does not follow what the console holds.
func (s *Server) inventory(ctx context.Context, c *conn, m *pb.Inventory, log *slog.Logger) error {
	if len(m.GetAdded())+len(m.GetRemoved()) > maxInventoryMessage {
		s.metrics.protocolErrors.Inc()
		return s.askFullInventory(ctx, c, "inventory message too large")
	}
	if !m.GetFull() && c.inv.awaitingFull {
		return nil
	}
	osr := store.OSRelease{ID: clip(m.GetOs().GetId(), 64), VersionID: clip(m.GetOs().GetVersionId(), 64),
		Codename: clip(m.GetOs().GetVersionCodename(), 64), Pretty: clip(m.GetOs().GetPrettyName(), 256)}
	if m.GetFull() {
		c.inv = inventoryConn{}
	}
	added := s.packagesFromProto(m.GetAdded(), &c.inv.rejected, 1)
	removed := s.packagesFromProto(m.GetRemoved(), &c.inv.rejected, -1)
	var err error
	if m.GetFull() {
		err = s.store.ReplaceInventory(ctx, c.hostID, m.GetGeneration(), osr, added)
		if err == nil && int(m.GetTotal())-c.inv.rejected != len(added) {
			err = store.ErrInventoryGap
		}
	} else {
		err = s.store.ApplyInventoryDiff(ctx, c.hostID, m.GetGeneration(), osr, added, removed, int(m.GetTotal())-c.inv.rejected)
	}
	if errors.Is(err, store.ErrInventoryGap) {
		log.Info("inventory out of step; asking for a full one", "err", err)
		return s.askFullInventory(ctx, c, err.Error())
	}
	if err != nil {
		return status.Errorf(codes.Unavailable, "store inventory: %v", err)
	}
	if s.cfg.InventoryChanged != nil {
		s.cfg.InventoryChanged(c.hostID)
	}
	return nil
}

// askFullInventory sends an InventoryRequest, at most one a minute per stream.
func (s *Server) askFullInventory(ctx context.Context, c *conn, reason string) error {
	if c.inv.awaitingFull && time.Since(c.inv.askedAt) < time.Minute {
		return nil
	}
	c.inv.awaitingFull, c.inv.askedAt = true, time.Now()
	select {
	case c.out <- &pb.ConsoleMessage{Body: &pb.ConsoleMessage_InventoryRequest{InventoryRequest: &pb.InventoryRequest{Reason: clip(reason, 256)}}}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// packagesFromProto converts and validates packages; refused ones are counted into rejected
// with sign (added +1, removed -1).
func (s *Server) packagesFromProto(ps []*pb.Package, rejected *int, sign int) []finding.Package {
	out := make([]finding.Package, 0, len(ps))
	for _, p := range ps {
		fp := finding.Package{Ecosystem: p.GetEcosystem(), Name: p.GetName(), Version: p.GetVersion(), SourceName: p.GetSourceName(),
			SourceVersion: p.GetSourceVersion(), Arch: p.GetArch(), Location: p.GetLocation(), PURL: p.GetPurl(), Extractor: p.GetExtractor()}
		if err := fp.Validate(); err != nil {
			s.metrics.protocolErrors.Inc()
			*rejected += sign
			continue
		}
		out = append(out, fp)
	}
	return out
}
