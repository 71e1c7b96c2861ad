package agentapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/palisade-cwpp/palisade/internal/console/pki"
	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/console/store/pgtest"
	"github.com/palisade-cwpp/palisade/internal/finding"
	pb "github.com/palisade-cwpp/palisade/proto/palisade/v1"
)

const testHost = "h-test"

// newTestServer returns a server over a fresh SQLite store holding one enrolled host, testHost.
func newTestServer(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	return newTestServerOn(tb, cfg, filepath.Join(tb.TempDir(), "console.db"))
}

// newTestServerOn is newTestServer over the store at dsn.
func newTestServerOn(tb testing.TB, cfg Config, dsn string) *Server {
	tb.Helper()
	dir := tb.TempDir()
	ctx := context.Background()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	ca, err := pki.LoadOrCreate(dir, "test")
	if err != nil {
		tb.Fatal(err)
	}
	now := st.Now()
	if err := st.CreateEnrollToken(ctx, store.EnrollToken{ID: "et-1", TokenHash: store.HashSecret("pe_test"), Group: "default",
		CreatedBy: "test", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		tb.Fatal(err)
	}
	if _, err := st.EnrollHost(ctx, store.HashSecret("pe_test"), store.Host{ID: testHost, Hostname: "web1", CertSerial: "1"}); err != nil {
		tb.Fatal(err)
	}
	return New(cfg, st, ca, NewMetrics(prometheus.NewRegistry()), slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func goodFinding() finding.Finding {
	return finding.Finding{ID: finding.NewID(), RuleID: "bruteforce.ssh-password-guessing", Category: finding.CategoryBruteForce,
		Severity: finding.SeverityHigh, Title: "SSH password guessing", Time: time.Now().UTC().Truncate(time.Millisecond),
		DedupKey: "192.0.2.7", Evidence: finding.Evidence{SourceIP: "192.0.2.7", Count: 3}}
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestDecodeFinding(t *testing.T) {
	s := newTestServer(t, Config{MaxFindingBytes: 2048})

	good := goodFinding()
	good.Host = "h-someone-else"
	f, err := s.decodeFinding(mustJSON(t, good), testHost)
	if err != nil {
		t.Fatalf("decodeFinding(good): %v", err)
	}
	if f.Host != testHost {
		t.Errorf("Host = %q, want %q from the certificate, not from the JSON", f.Host, testHost)
	}
	if f.ID != good.ID || f.Key() != good.Key() || !f.Time.Equal(good.Time) {
		t.Errorf("decoded %+v, want %+v", f, good)
	}

	// Without host in the JSON too.
	good.Host = ""
	if f, err := s.decodeFinding(mustJSON(t, good), testHost); err != nil || f.Host != testHost {
		t.Errorf("decodeFinding without host: %v, host %q", err, f.Host)
	}

	big := goodFinding()
	big.Evidence.Lines = []string{strings.Repeat("x", 4096)}
	invalid := goodFinding()
	invalid.RuleID = "Bad"
	noTime := goodFinding()
	noTime.Time = time.Time{}
	longID := goodFinding()
	longID.ID = strings.Repeat("\xff", 300)
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"oversize", mustJSON(t, big), "exceeds 2048"},
		{"oversize junk", make([]byte, 2049), "exceeds"},
		{"empty", nil, "decode finding"},
		{"bad JSON", []byte(`{"id":`), "decode finding"},
		{"not an object", []byte(`[1,2]`), "decode finding"},
		{"wrong type", []byte(`{"severity":"high"}`), "decode finding"},
		{"null", []byte(`null`), "id must be"},
		{"empty object", []byte(`{}`), "id must be"},
		{"invalid rule", mustJSON(t, invalid), "rule_id"},
		{"missing time", mustJSON(t, noTime), "time is missing"},
		{"time after year 9999 in UTC", []byte(`{"id":"x","rule_id":"a.b","category":"agent","severity":4,"title":"t","time":"9999-12-31T23:59:59-23:59"}`), "out of range"},
		{"time before year 1 in UTC", []byte(`{"id":"x","rule_id":"a.b","category":"agent","severity":4,"title":"t","time":"0000-01-01T00:00:00+01:00"}`), "out of range"},
		{"NUL in title", []byte(`{"id":"x","rule_id":"a.b","category":"agent","severity":4,"title":"a\u0000b","time":"2025-01-01T00:00:00Z"}`), "title contains a NUL byte"},
		{"long invalid ID", mustJSON(t, longID), "id must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.decodeFinding(tt.b, testHost)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if len(err.Error()) > 2048 {
				t.Errorf("error of %d bytes echoes the agent's input", len(err.Error()))
			}
		})
	}
}

func TestDecodeFindingDefaultLimit(t *testing.T) {
	s := newTestServer(t, Config{})
	if s.cfg.MaxFindingBytes != 256<<10 {
		t.Fatalf("default MaxFindingBytes = %d", s.cfg.MaxFindingBytes)
	}
	if _, err := s.decodeFinding(make([]byte, 256<<10+1), testHost); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("oversize finding: %v", err)
	}
}

func TestClip(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"", 5, ""},
		{"abc", 5, "abc"},
		{"abc", 3, "abc"},
		{"abcdef", 3, "abc"},
		{"abc", 0, ""},
		{"héllo", 1, "h"},
		{"héllo", 2, "h"}, // é is two bytes: cutting after its first byte would split it
		{"héllo", 3, "hé"},
		{"日本語", 3, "日"},
		{"日本語", 4, "日"},
		{"日本語", 5, "日"},
		{"日本語", 6, "日本"},
		{"日本語", 2, ""},
		{"😀x", 3, ""},
		{"😀x", 4, "😀"},
		{"a\xffb", 10, "a\uFFFDb"},
		{"a\xff\xfeb", 10, "a\uFFFDb"}, // one replacement per run of invalid bytes
		{"\xff\xff\xff\xff", 2, ""},    // the replacement is 3 bytes
		{"\xff\xff\xff\xff", 3, "\uFFFD"},
		{"ab\xe6\x97", 10, "ab\uFFFD"}, // truncated rune at the end
		{"a\x00b", 10, "a\uFFFDb"},     // NUL cannot be stored as PostgreSQL text
		{"a\x00b", 2, "a"},
		{"\x00\x00", 3, "\uFFFD"},
	}
	for _, tt := range tests {
		got := clip(tt.in, tt.n)
		if got != tt.want {
			t.Errorf("clip(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
		if !utf8.ValidString(got) || len(got) > tt.n || strings.IndexByte(got, 0) >= 0 {
			t.Errorf("clip(%q, %d) = %q: invalid or too long", tt.in, tt.n, got)
		}
	}
}

func TestFactsFromProto(t *testing.T) {
	if got := factsFromProto(nil); got.Hostname != "" || got.IPAddresses != nil || !got.BootTime.IsZero() {
		t.Fatalf("factsFromProto(nil) = %+v", got)
	}
	long := strings.Repeat("é", 200) // 400 bytes
	ips := make([]string, 100)
	for i := range ips {
		ips[i] = "10.0.0.1"
	}
	ips[0] = strings.Repeat("1", 100)
	ips[1] = "\xff\xfe"
	in := &pb.HostFacts{Hostname: long, OsId: long, OsVersion: long, OsPretty: long, Kernel: long, Arch: long,
		IpAddresses: ips, AgentVersion: long, BootTimeUnix: 1700000000, MachineId: "m\xffid"}
	out := factsFromProto(in)
	for _, c := range []struct {
		name string
		v    string
		max  int
	}{
		{"hostname", out.Hostname, 255}, {"os_id", out.OSID, 64}, {"os_version", out.OSVersion, 64},
		{"os_pretty", out.OSPretty, 255}, {"kernel", out.Kernel, 255}, {"arch", out.Arch, 32},
		{"agent_version", out.AgentVersion, 64}, {"machine_id", out.MachineID, 64},
	} {
		if len(c.v) > c.max || !utf8.ValidString(c.v) {
			t.Errorf("%s: %d bytes (max %d), valid UTF-8 %v", c.name, len(c.v), c.max, utf8.ValidString(c.v))
		}
	}
	if len(out.Hostname) != 254 || len(out.Arch) != 32 {
		t.Errorf("clipped lengths: hostname %d (want 254), arch %d (want 32)", len(out.Hostname), len(out.Arch))
	}
	if out.MachineID != "m\uFFFDid" {
		t.Errorf("machine ID %q", out.MachineID)
	}
	if len(out.IPAddresses) != 64 {
		t.Errorf("%d IP addresses kept, want 64", len(out.IPAddresses))
	}
	if len(out.IPAddresses[0]) != 64 || out.IPAddresses[1] != "\uFFFD" || out.IPAddresses[63] != "10.0.0.1" {
		t.Errorf("IP addresses %q", out.IPAddresses[:2])
	}
	if !out.BootTime.Equal(time.Unix(1700000000, 0)) || out.BootTime.Location() != time.UTC {
		t.Errorf("boot time %v", out.BootTime)
	}

	for _, bt := range []int64{0, -1, -1 << 62, 1 << 40, 1<<63 - 1, 253402300800} {
		out := factsFromProto(&pb.HostFacts{Hostname: "h", BootTimeUnix: bt})
		if !out.BootTime.IsZero() {
			t.Errorf("boot time %d accepted as %v", bt, out.BootTime)
		}
		if _, err := json.Marshal(out); err != nil {
			t.Errorf("boot time %d: facts do not marshal: %v", bt, err)
		}
	}
	if out := factsFromProto(&pb.HostFacts{BootTimeUnix: 253402300799}); out.BootTime.Year() != 9999 {
		t.Errorf("last representable boot time refused: %v", out.BootTime)
	}
}

// A host whose agent reports a nonsensical boot time keeps its other facts.
func TestFactsWithBadBootTimeAreStored(t *testing.T) {
	s := newTestServer(t, Config{})
	ctx := context.Background()
	facts := factsFromProto(&pb.HostFacts{Hostname: "web1", OsId: "debian", BootTimeUnix: 1 << 40})
	if err := s.store.UpdateHostFacts(ctx, testHost, facts); err != nil {
		t.Fatal(err)
	}
	h, err := s.store.HostByID(ctx, testHost, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if h.Facts.OSID != "debian" || h.Facts.Hostname != "web1" {
		t.Fatalf("facts lost: %+v", h.Facts)
	}
}

func checkFacts(t *testing.T, in *pb.HostFacts, out finding.HostFacts) {
	t.Helper()
	for _, c := range []struct {
		name  string
		in, v string
		max   int
	}{
		{"hostname", in.GetHostname(), out.Hostname, 255}, {"os_id", in.GetOsId(), out.OSID, 64},
		{"os_version", in.GetOsVersion(), out.OSVersion, 64}, {"os_pretty", in.GetOsPretty(), out.OSPretty, 255},
		{"kernel", in.GetKernel(), out.Kernel, 255}, {"arch", in.GetArch(), out.Arch, 32},
		{"agent_version", in.GetAgentVersion(), out.AgentVersion, 64}, {"machine_id", in.GetMachineId(), out.MachineID, 64},
	} {
		if !utf8.ValidString(c.v) || strings.IndexByte(c.v, 0) >= 0 {
			t.Fatalf("%s %q is not valid UTF-8 without NUL", c.name, c.v)
		}
		if len(c.v) > c.max {
			t.Fatalf("%s: %d bytes, max %d", c.name, len(c.v), c.max)
		}
		storable := strings.ReplaceAll(strings.ToValidUTF8(c.in, "\uFFFD"), "\x00", "\uFFFD")
		if !strings.HasPrefix(storable, c.v) {
			t.Fatalf("%s %q is not a prefix of the input %q", c.name, c.v, c.in)
		}
		if len(storable) <= c.max && c.v != storable {
			t.Fatalf("%s %q clipped although it fits", c.name, c.in)
		}
	}
	if len(out.IPAddresses) > 64 || len(out.IPAddresses) != min(len(in.GetIpAddresses()), 64) {
		t.Fatalf("%d IP addresses from %d", len(out.IPAddresses), len(in.GetIpAddresses()))
	}
	for _, ip := range out.IPAddresses {
		if !utf8.ValidString(ip) || len(ip) > 64 || strings.IndexByte(ip, 0) >= 0 {
			t.Fatalf("IP address %q", ip)
		}
	}
	if _, err := json.Marshal(out); err != nil {
		t.Fatalf("facts do not marshal: %v", err)
	}
}

func FuzzFactsFromProto(f *testing.F) {
	f.Add("web1", "debian", "12", "Debian GNU/Linux 12", "6.1.0", "x86_64", "10.0.0.1\n::1", "0.1.0", int64(1700000000), "abc", 1)
	f.Add(strings.Repeat("é", 200), "\xff", "\xe6\x97", "", "", strings.Repeat("a", 40), "", "", int64(-1), "", 100)
	f.Add("", "", "", "", "", "", "", "", int64(1<<62), "", 0)
	f.Add("", "", "", "", "", "", "", "", int64(253402300800), "", 0)
	f.Fuzz(func(t *testing.T, hostname, osID, osVersion, osPretty, kernel, arch, ips, agentVersion string, boot int64, machineID string, ipRepeat int) {
		list := strings.Split(ips, "\n")
		if ipRepeat = min(max(ipRepeat, 1), 200); ipRepeat > 1 {
			for len(list) < ipRepeat {
				list = append(list, list...)
			}
		}
		in := &pb.HostFacts{Hostname: hostname, OsId: osID, OsVersion: osVersion, OsPretty: osPretty, Kernel: kernel, Arch: arch,
			IpAddresses: list, AgentVersion: agentVersion, BootTimeUnix: boot, MachineId: machineID}
		out := factsFromProto(in)
		checkFacts(t, in, out)
		if boot <= 0 && !out.BootTime.IsZero() {
			t.Fatalf("boot time %d gave %v", boot, out.BootTime)
		}
	})
}

func FuzzDecodeFinding(f *testing.F) {
	s := newTestServer(f, Config{MaxFindingBytes: 4096})
	f.Add(mustJSON(f, goodFinding()))
	f.Add([]byte(`{"id":"x","rule_id":"a.b","category":"agent","severity":4,"title":"t","time":"2025-01-01T00:00:00Z","host":"h-other"}`))
	f.Add([]byte(`{"id":"x","rule_id":"a.b","category":"agent","severity":4,"title":"t","time":"9999-12-31T23:59:59-23:59"}`))
	f.Add([]byte(`{"id":"\xff","rule_id":"a.b","category":"agent","severity":4,"title":"\u0000","time":"2025-01-01T00:00:00Z","evidence":{"fields":{"\xff":"\ud800"}}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`nul`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fd, err := s.decodeFinding(b, testHost)
		if err != nil {
			if len(err.Error()) > 4096 {
				t.Fatalf("error of %d bytes", len(err.Error()))
			}
			return
		}
		if len(b) > s.cfg.MaxFindingBytes {
			t.Fatalf("accepted %d bytes", len(b))
		}
		if fd.Host != testHost {
			t.Fatalf("host %q", fd.Host)
		}
		if err := fd.Validate(); err != nil {
			t.Fatalf("accepted an invalid finding: %v", err)
		}
		if _, err := json.Marshal(fd); err != nil {
			t.Fatalf("accepted finding does not marshal: %v", err)
		}
		for _, v := range []string{fd.ID, fd.RuleID, fd.Title, fd.DedupKey, fd.Action, string(fd.Category)} {
			if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
				t.Fatalf("accepted a finding with %q, which SQL text cannot hold", v)
			}
		}
	})
}

// fakeStream feeds messages to receive and collects what it would send.
type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
	in  []*pb.AgentMessage
}

func (f *fakeStream) Context() context.Context { return f.ctx }
func (f *fakeStream) Send(*pb.ConsoleMessage) error {
	return nil
}

func (f *fakeStream) Recv() (*pb.AgentMessage, error) {
	if len(f.in) == 0 {
		return nil, io.EOF
	}
	m := f.in[0]
	f.in = f.in[1:]
	return m, nil
}

// runMessages passes msgs through the stream's receive loop, as one agent's stream.
func runMessages(t *testing.T, s *Server, msgs ...*pb.AgentMessage) (*conn, error) {
	t.Helper()
	ctx := context.Background()
	c := &conn{hostID: testHost, out: make(chan *pb.ConsoleMessage, len(msgs)+1), tasks: make(chan struct{}, 1), cancel: func(error) {}}
	err := s.receive(ctx, &fakeStream{ctx: ctx, in: msgs}, c, s.log)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return c, err
}

func TestReceiveFindings(t *testing.T) {
	s := newTestServer(t, Config{})
	f1, f2 := goodFinding(), goodFinding()
	bad := goodFinding()
	bad.Category = "nope"
	far := []byte(`{"id":"far","rule_id":"a.b","category":"agent","severity":4,"title":"t","time":"9999-12-31T23:59:59-23:59"}`)
	c, err := runMessages(t, s, &pb.AgentMessage{Body: &pb.AgentMessage_Findings{Findings: &pb.FindingBatch{LastSeq: 7,
		Findings: [][]byte{mustJSON(t, f1), mustJSON(t, f2), mustJSON(t, bad), []byte("junk"), far, mustJSON(t, f1)}}}})
	if err != nil {
		t.Fatal(err)
	}
	ack := (<-c.out).GetAck()
	if ack.GetSeq() != 7 || ack.GetRejected() != 3 {
		t.Fatalf("ack %v, want seq 7 with 3 rejected", ack)
	}
	events, total, err := s.store.ListEvents(context.Background(), store.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if total != 1 || events[0].Count != 6 || events[0].HostID != testHost {
		t.Fatalf("events %+v (total %d), want one event of count 6 on %s", events, total, testHost)
	}
	if _, err := json.Marshal(events); err != nil {
		t.Fatalf("events do not marshal: %v", err)
	}
}

// Whatever an agent sends must not make the store fail, on either backend: a batch that cannot
// be stored is not acknowledged and comes back forever, and a Hello that cannot be stored ends
// the stream each time the agent connects. PostgreSQL text holds neither NUL nor invalid UTF-8.
func TestReceiveUnstorableStrings(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			dsn := filepath.Join(t.TempDir(), "console.db")
			if backend == "postgres" {
				srv := pgtest.Require(t)
				var err error
				if dsn, err = srv.CreateDatabase("agentapi"); err != nil {
					t.Fatal(err)
				}
			}
			s := newTestServerOn(t, Config{}, dsn)
			good := goodFinding()
			nul := func(field string) []byte {
				return []byte(`{"id":"` + finding.NewID() + `","rule_id":"a.b","category":"agent","severity":4,"title":"t","time":"2025-01-01T00:00:00Z",` + field + `}`)
			}
			evidence := nul(`"evidence":{"lines":["a\u0000b"],"fields":{"\u0000":"\u0000"},"path":"/tmp/\u0000"}`)
			c, err := runMessages(t, s,
				&pb.AgentMessage{Body: &pb.AgentMessage_Hello{Hello: &pb.Hello{Facts: &pb.HostFacts{Hostname: "web\x001", OsPretty: "Debian\x00"}}}},
				&pb.AgentMessage{Body: &pb.AgentMessage_Findings{Findings: &pb.FindingBatch{LastSeq: 9, Findings: [][]byte{
					mustJSON(t, good),
					[]byte(`{"id":"a\u0000","rule_id":"a.b","category":"agent","severity":4,"title":"t","time":"2025-01-01T00:00:00Z"}`),
					nul(`"dedup_key":"\u0000"`), nul(`"action":"x\u0000"`),
					[]byte(`{"id":"` + finding.NewID() + `","rule_id":"a.b","category":"agent","severity":4,"title":"\u0000","time":"2025-01-01T00:00:00Z"}`),
					evidence,
				}}}},
				&pb.AgentMessage{Body: &pb.AgentMessage_Heartbeat{Heartbeat: &pb.Heartbeat{Components: []*pb.ComponentState{{Name: "a\x00", Reason: "\x00"}}}}},
				&pb.AgentMessage{Body: &pb.AgentMessage_TaskUpdate{TaskUpdate: &pb.TaskUpdate{TaskId: "t-\x00", State: "failed", Message: "\x00"}}},
			)
			if err != nil {
				t.Fatalf("receive: %v", err)
			}
			ack := (<-c.out).GetAck()
			if ack.GetSeq() != 9 || ack.GetRejected() != 4 {
				t.Fatalf("ack %v, want seq 9 with 4 rejected", ack)
			}
			ctx := context.Background()
			if n, err := s.store.FindingCount(ctx); err != nil || n != 2 {
				t.Fatalf("%d findings stored (%v), want 2", n, err)
			}
			h, err := s.store.HostByID(ctx, testHost, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if h.Hostname != "web\uFFFD1" || h.Facts.OSPretty != "Debian\uFFFD" {
				t.Errorf("host %q facts %+v", h.Hostname, h.Facts)
			}
		})
	}
}

// FuzzAgentMessage decodes arbitrary bytes as an agent's stream message and, when it parses, runs
// it through the console's receive loop over a real store. Nothing an agent sends may crash the
// console, and whatever it accepts must be stored (an unstored batch is never acknowledged, so the
// agent would resend it forever) and servable afterwards.
func FuzzAgentMessage(f *testing.F) {
	s := newTestServer(f, Config{MaxFindingBytes: 8192})
	seed := func(m *pb.AgentMessage) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	good := goodFinding()
	seed(&pb.AgentMessage{Body: &pb.AgentMessage_Findings{Findings: &pb.FindingBatch{LastSeq: 1, Findings: [][]byte{mustJSON(f, good), []byte("{}")}}}})
	seed(&pb.AgentMessage{Body: &pb.AgentMessage_Findings{Findings: &pb.FindingBatch{LastSeq: 2, Findings: [][]byte{
		[]byte(`{"id":"y","rule_id":"a.b","category":"agent","severity":4,"title":"t","time":"9999-12-31T23:59:59-23:59"}`)}}}})
	seed(&pb.AgentMessage{Body: &pb.AgentMessage_Hello{Hello: &pb.Hello{AckedSeq: 3, Facts: &pb.HostFacts{Hostname: "web1é", BootTimeUnix: 1 << 40, IpAddresses: []string{"10.0.0.1"}}}}})
	seed(&pb.AgentMessage{Body: &pb.AgentMessage_Heartbeat{Heartbeat: &pb.Heartbeat{TimeUnixMs: 1, Cost: &pb.AgentCost{CpuPercent: 1.5, SpoolDropped: 3, BudgetMode: "cgroup"},
		Components: []*pb.ComponentState{{Name: "sshd", Kind: "source", State: "running"}}}}})
	seed(&pb.AgentMessage{Body: &pb.AgentMessage_TaskUpdate{TaskUpdate: &pb.TaskUpdate{TaskId: "t-1", State: "succeeded", Progress: 100, Result: []byte(`{"a":1}`)}}})
	seed(&pb.AgentMessage{Body: &pb.AgentMessage_TaskUpdate{TaskUpdate: &pb.TaskUpdate{TaskId: "t-1", State: "bogus"}}})
	seed(&pb.AgentMessage{})
	f.Add([]byte{0x1a, 0x02, 0x12, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m pb.AgentMessage
		if err := proto.Unmarshal(b, &m); err != nil {
			return
		}
		if batch := m.GetFindings(); batch != nil {
			for _, raw := range batch.GetFindings() {
				fd, err := s.decodeFinding(raw, testHost)
				if err == nil && fd.Host != testHost {
					t.Fatalf("host %q", fd.Host)
				}
			}
		}
		if hello := m.GetHello(); hello != nil && hello.GetFacts() != nil {
			checkFacts(t, hello.GetFacts(), factsFromProto(hello.GetFacts()))
		}
		c, err := runMessages(t, s, &m)
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		if m.GetFindings() != nil {
			select {
			case out := <-c.out:
				if out.GetAck() == nil || out.GetAck().GetSeq() != m.GetFindings().GetLastSeq() {
					t.Fatalf("answer %v", out)
				}
			default:
				t.Fatal("finding batch not acknowledged")
			}
		}
		// The newest and the oldest events must still be servable.
		ctx := context.Background()
		for _, flt := range []store.EventFilter{{Limit: 10}, {Until: time.Unix(0, 0), Limit: 10}} {
			events, _, err := s.store.ListEvents(ctx, flt)
			if err != nil {
				t.Fatalf("list events: %v", err)
			}
			if _, err := json.Marshal(events); err != nil {
				t.Fatalf("stored events do not marshal: %v", err)
			}
		}
		h, err := s.store.HostByID(ctx, testHost, time.Time{})
		if err != nil {
			t.Fatalf("host: %v", err)
		}
		if _, err := json.Marshal(h); err != nil {
			t.Fatalf("host does not marshal: %v", err)
		}
	})
}
