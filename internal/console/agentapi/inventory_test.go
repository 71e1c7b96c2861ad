package agentapi

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/palisade-cwpp/palisade/internal/console/store"
	pb "github.com/palisade-cwpp/palisade/proto/palisade/v1"
)

func invMsg(gen uint64, full bool, total uint32, added, removed []*pb.Package) *pb.AgentMessage {
	return &pb.AgentMessage{Body: &pb.AgentMessage_Inventory{Inventory: &pb.Inventory{Generation: gen, Full: full, Total: total,
		Os: &pb.OSRelease{Id: "debian", VersionId: "12"}, Added: added, Removed: removed}}}
}

var (
	pSSH  = &pb.Package{Ecosystem: "Debian:12", Name: "openssh-server", SourceName: "openssh", Version: "1:9.2p1-2+deb12u2", Location: "/var/lib/dpkg/status"}
	pCurl = &pb.Package{Ecosystem: "Debian:12", Name: "curl", Version: "7.88.1-10+deb12u3", Location: "/var/lib/dpkg/status"}
	pBad  = &pb.Package{Ecosystem: "Debian:12", Name: "bad\x00name", Version: "1"}
)

func TestInventoryFullDiffAndGap(t *testing.T) {
	s := newTestServer(t, Config{})
	var changed []string
	s.cfg.InventoryChanged = func(h string) { changed = append(changed, h) }
	ctx := context.Background()

	// A full inventory with one malformed package: the rest is stored, and the agent's total
	// (which counts it) still checks out.
	c, err := runMessages(t, s, invMsg(5, true, 2, []*pb.Package{pSSH, pBad}, nil), invMsg(6, false, 2, []*pb.Package{pCurl}, []*pb.Package{pBad}))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.out) != 0 {
		t.Fatalf("unexpected request: %v", <-c.out)
	}
	_, n, err := s.store.HostPackages(ctx, testHost, store.PackageFilter{})
	if err != nil || n != 2 || len(changed) != 2 {
		t.Fatalf("packages %d, err %v, rematches %v", n, err, changed)
	}

	// A diff that skips a generation makes the console ask for everything, and ignore diffs
	// until the full inventory comes.
	c, err = runMessages(t, s, invMsg(9, false, 1, nil, []*pb.Package{pCurl}), invMsg(10, false, 0, nil, []*pb.Package{pSSH}))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.out) != 1 || (<-c.out).GetInventoryRequest() == nil {
		t.Fatal("no InventoryRequest after a generation gap")
	}
	if _, n, _ := s.store.HostPackages(ctx, testHost, store.PackageFilter{}); n != 2 {
		t.Errorf("a diff after a gap was applied: %d packages", n)
	}
}

// FuzzInventory sends arbitrary inventory messages in sequence: the stream must never fail,
// and what is stored must always be valid packages the API can serve.
func FuzzInventory(f *testing.F) {
	s := newTestServer(f, Config{})
	for _, m := range []*pb.AgentMessage{invMsg(1, true, 1, []*pb.Package{pSSH}, nil), invMsg(2, false, 2, []*pb.Package{pCurl}, nil),
		invMsg(3, false, 1, []*pb.Package{pBad}, []*pb.Package{pCurl}), invMsg(1<<63, true, 1<<31, nil, nil)} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, b)
	}
	f.Fuzz(func(t *testing.T, first, second []byte) {
		var msgs []*pb.AgentMessage
		for _, b := range [][]byte{first, second} {
			var m pb.AgentMessage
			if proto.Unmarshal(b, &m) == nil && m.GetInventory() != nil {
				msgs = append(msgs, &m)
			}
		}
		if _, err := runMessages(t, s, msgs...); err != nil {
			t.Fatalf("receive: %v", err)
		}
		pkgs, n, err := s.store.HostPackages(context.Background(), testHost, store.PackageFilter{})
		if err != nil || n != len(pkgs) {
			t.Fatalf("stored packages: %d/%d, %v", len(pkgs), n, err)
		}
		for _, p := range pkgs {
			if err := p.Validate(); err != nil {
				t.Fatalf("stored an invalid package %+v: %v", p, err)
			}
		}
	})
}
