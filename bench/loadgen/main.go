// Command loadgen measures a running console: it enrolls simulated agents through the real
// enrollment RPC, then either holds their streams open with heartbeats (how many agents one
// console holds, at what memory and CPU) or has them send findings as fast as the console
// acknowledges them (findings ingested per second). It speaks the same protocol as
// palisade-agent, with one TCP connection and one client certificate per simulated agent.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/palisade-cwpp/palisade/internal/console"
	"github.com/palisade-cwpp/palisade/internal/console/pki"
	"github.com/palisade-cwpp/palisade/internal/finding"
	pb "github.com/palisade-cwpp/palisade/proto/palisade/v1"
)

func main() {
	cliPath := flag.String("cli", "data/cli.json", "the console's cli.json (admin token, URL, CA file)")
	agentAddr := flag.String("agent-addr", "127.0.0.1:8444", "console agent API")
	agents := flag.Int("agents", 100, "simulated agents")
	mode := flag.String("mode", "hold", "hold: keep streams open with heartbeats; findings: send findings as fast as acked")
	hold := flag.Duration("duration", 30*time.Second, "how long to hold or send")
	heartbeat := flag.Duration("heartbeat", 15*time.Second, "heartbeat interval in hold mode")
	batch := flag.Int("batch", 500, "findings per batch in findings mode")
	window := flag.Int("window", 4, "batches in flight per agent in findings mode")
	consolePID := flag.Int("console-pid", 0, "console process to sample for CPU and RSS")
	flag.Parse()
	if err := run(*cliPath, *agentAddr, *agents, *mode, *hold, *heartbeat, *batch, *window, *consolePID); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type simAgent struct {
	hostID string
	cert   tls.Certificate
}

func run(cliPath, agentAddr string, n int, mode string, dur, heartbeat time.Duration, batch, window, pid int) error {
	b, err := os.ReadFile(cliPath)
	if err != nil {
		return err
	}
	var cli console.CLIConfig
	if err := json.Unmarshal(b, &cli); err != nil {
		return err
	}
	caPEM, err := os.ReadFile(cli.CAFile)
	if err != nil {
		return err
	}
	ca, err := pki.ParseCertPEM(caPEM)
	if err != nil {
		return err
	}
	start := time.Now()
	sims, err := enrollAll(cli, caPEM, ca, agentAddr, n)
	if err != nil {
		return err
	}
	fmt.Printf("enrolled %d agents in %s (%.0f/s)\n", n, time.Since(start).Round(time.Millisecond), float64(n)/time.Since(start).Seconds())
	switch mode {
	case "hold":
		return holdAll(cli, caPEM, ca, agentAddr, sims, dur, heartbeat, pid)
	case "findings":
		return sendFindings(ca, agentAddr, sims, dur, batch, window, pid)
	}
	return fmt.Errorf("unknown mode %q", mode)
}

func apiClient(caPEM []byte) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 64}}
}

func apiCall(hc *http.Client, cli console.CLIConfig, method, path string, in, out any) error {
	body, _ := json.Marshal(in)
	req, _ := http.NewRequest(method, cli.URL+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+cli.Token)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func consoleTLS(ca *x509.Certificate, cert *tls.Certificate) *tls.Config {
	cfg := &tls.Config{
		InsecureSkipVerify: true, // verified against the console CA below
		MinVersion:         tls.VersionTLS13,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			roots := x509.NewCertPool()
			roots.AddCert(ca)
			_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			return err
		},
	}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}

// enrollAll creates n tokens through the user API and enrolls n agents with them.
func enrollAll(cli console.CLIConfig, caPEM []byte, ca *x509.Certificate, agentAddr string, n int) ([]simAgent, error) {
	hc := apiClient(caPEM)
	cc, err := grpc.NewClient(agentAddr, grpc.WithTransportCredentials(credentials.NewTLS(consoleTLS(ca, nil))))
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	client := pb.NewAgentServiceClient(cc)
	sims := make([]simAgent, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 32)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				var tok struct {
					Token string `json:"token"`
				}
				if err := apiCall(hc, cli, "POST", "/api/v1/enroll-tokens", map[string]string{"ttl": "1h", "group": "loadgen"}, &tok); err != nil {
					errc <- err
					return
				}
				keyPEM, csrPEM, err := pki.NewKeyAndCSR("sim")
				if err != nil {
					errc <- err
					return
				}
				resp, err := client.Enroll(context.Background(), &pb.EnrollRequest{Token: tok.Token, CsrPem: csrPEM,
					Facts: &pb.HostFacts{Hostname: "sim-" + strconv.Itoa(i), OsId: "debian", Kernel: "6.1.0", Arch: "x86_64", AgentVersion: "loadgen"}})
				if err != nil {
					errc <- err
					return
				}
				cert, err := tls.X509KeyPair(resp.GetCertificatePem(), keyPEM)
				if err != nil {
					errc <- err
					return
				}
				sims[i] = simAgent{hostID: resp.GetHostId(), cert: cert}
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return nil, err
	}
	return sims, nil
}

// connect opens one agent's stream on its own connection and sends the hello.
func connect(ctx context.Context, ca *x509.Certificate, agentAddr string, s simAgent) (*grpc.ClientConn, pb.AgentService_ConnectClient, error) {
	cc, err := grpc.NewClient(agentAddr, grpc.WithTransportCredentials(credentials.NewTLS(consoleTLS(ca, &s.cert))))
	if err != nil {
		return nil, nil, err
	}
	stream, err := pb.NewAgentServiceClient(cc).Connect(ctx)
	if err != nil {
		cc.Close()
		return nil, nil, err
	}
	if err := stream.Send(&pb.AgentMessage{Body: &pb.AgentMessage_Hello{Hello: &pb.Hello{Facts: &pb.HostFacts{Hostname: s.hostID, AgentVersion: "loadgen"}}}}); err != nil {
		cc.Close()
		return nil, nil, err
	}
	return cc, stream, nil
}

func holdAll(cli console.CLIConfig, caPEM []byte, ca *x509.Certificate, agentAddr string, sims []simAgent, dur, heartbeat time.Duration, pid int) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var up, failed atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64) // bound concurrent TLS handshakes
	start := time.Now()
	for _, s := range sims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			cc, stream, err := connect(ctx, ca, agentAddr, s)
			<-sem
			if err != nil {
				failed.Add(1)
				return
			}
			defer cc.Close()
			up.Add(1)
			go func() { // drain console messages
				for {
					if _, err := stream.Recv(); err != nil {
						return
					}
				}
			}()
			t := time.NewTicker(heartbeat)
			defer t.Stop()
			for {
				if err := stream.Send(&pb.AgentMessage{Body: &pb.AgentMessage_Heartbeat{Heartbeat: &pb.Heartbeat{TimeUnixMs: time.Now().UnixMilli(),
					Cost: &pb.AgentCost{CpuPercent: 0.2, RssBytes: 30 << 20, BudgetMode: "self"}}}}); err != nil {
					up.Add(-1)
					failed.Add(1)
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	for up.Load()+failed.Load() < int64(len(sims)) && time.Since(start) < 5*time.Minute {
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Printf("connected %d agents in %s (%d failed)\n", up.Load(), time.Since(start).Round(time.Millisecond), failed.Load())
	before := sample(pid)
	time.Sleep(dur)
	after := sample(pid)
	var online struct {
		Total int `json:"total"`
	}
	apiCall(apiClient(caPEM), cli, "GET", "/api/v1/hosts?online=true&group=loadgen&limit=1", nil, &online)
	fmt.Printf("RESULT hold agents=%d held=%d online_in_api=%d console_rss_mb=%.0f console_cpu_pct=%.1f\n",
		len(sims), up.Load(), online.Total, float64(after.rss)/(1<<20), cpuPct(before, after))
	cancel()
	wg.Wait()
	return nil
}

func sendFindings(ca *x509.Certificate, agentAddr string, sims []simAgent, dur time.Duration, batchSize, window, pid int) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var acked atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	before := sample(pid)
	start := time.Now()
	deadline := start.Add(dur)
	for ai, s := range sims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc, stream, err := connect(ctx, ca, agentAddr, s)
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			defer cc.Close()
			inflight := make(chan struct{}, window)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					m, err := stream.Recv()
					if err != nil {
						return
					}
					if m.GetAck() != nil {
						acked.Add(int64(batchSize))
						<-inflight
					}
				}
			}()
			seq := uint64(0)
			for i := 0; time.Now().Before(deadline); i++ {
				b := &pb.FindingBatch{}
				for j := 0; j < batchSize; j++ {
					seq++
					b.Findings = append(b.Findings, findingJSON(ai, int(seq)))
				}
				b.LastSeq = seq
				select {
				case inflight <- struct{}{}:
				case <-done:
					return
				}
				if err := stream.Send(&pb.AgentMessage{Body: &pb.AgentMessage_Findings{Findings: b}}); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
			for len(inflight) > 0 && time.Since(deadline) < 30*time.Second {
				time.Sleep(10 * time.Millisecond)
			}
			stream.CloseSend()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	after := sample(pid)
	if err, _ := firstErr.Load().(error); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	fmt.Printf("RESULT findings agents=%d acked=%d seconds=%.1f findings_per_s=%.0f console_cpu_pct=%.1f console_rss_mb=%.0f\n",
		len(sims), acked.Load(), elapsed.Seconds(), float64(acked.Load())/elapsed.Seconds(), cpuPct(before, after), float64(after.rss)/(1<<20))
	return nil
}

// findingJSON makes a realistic finding: one in twenty repeats a key (aggregation), the rest
// are distinct sources.
func findingJSON(agent, seq int) []byte {
	key := fmt.Sprintf("198.51.100.%d", seq%250)
	if seq%20 != 0 {
		key = fmt.Sprintf("src-%d-%d", agent, seq)
	}
	f := finding.Finding{ID: finding.NewID(), RuleID: "bruteforce.ssh-password-guessing", Category: finding.CategoryBruteForce,
		Severity: finding.SeverityHigh, Title: "SSH password guessing from " + key, Time: time.Now().UTC(), DedupKey: key,
		Action: "Block the source address.", MITRE: []string{"T1110.001"},
		Evidence: finding.Evidence{Source: "/var/log/auth.log", SourceIP: key, Users: []string{"root", "admin"},
			Lines: []string{"Dec  4 20:01:02 web1 sshd[1234]: Failed password for invalid user admin from " + key + " port 52344 ssh2"}}}
	b, _ := json.Marshal(f)
	return b
}

type procSample struct {
	at    time.Time
	ticks uint64
	rss   uint64
}

func sample(pid int) procSample {
	s := procSample{at: time.Now()}
	if pid == 0 {
		return s
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		ut, _ := strconv.ParseUint(f[11], 10, 64)
		st, _ := strconv.ParseUint(f[12], 10, 64)
		s.ticks = ut + st
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid)); err == nil {
		f := strings.Fields(string(b))
		pages, _ := strconv.ParseUint(f[1], 10, 64)
		s.rss = pages * uint64(os.Getpagesize())
	}
	return s
}

func cpuPct(a, b procSample) float64 {
	d := b.at.Sub(a.at).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(b.ticks-a.ticks) / 100 / d * 100 // USER_HZ is 100 on Linux
}
