package notify

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/finding"
)

type receiver struct {
	mu       sync.Mutex
	fails    int // answer 503 this many times first
	got      []Payload
	attempts int
	badSig   int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.attempts++
	if r.Header.Get(SignatureHeader) != Sign("receiver-secret-123", body) {
		rc.badSig++
	}
	if rc.fails > 0 {
		rc.fails--
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var p Payload
	json.Unmarshal(body, &p)
	rc.got = append(rc.got, p)
}

func TestNewEventsReachMatchingWebhooksSignedAndRetried(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "console.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rc := &receiver{fails: 2}
	srv := httptest.NewServer(rc)
	defer srv.Close()

	now := st.Now()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.CreateEnrollToken(ctx, store.EnrollToken{ID: "et-1", TokenHash: store.HashSecret("pe_1"), Group: "web", CreatedBy: "admin", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
	_, err = st.EnrollHost(ctx, store.HashSecret("pe_1"), store.Host{ID: "h-1", Hostname: "web-01", CertSerial: "1"})
	must(err)
	must(st.CreateWebhook(ctx, store.Webhook{ID: "wh-1", Name: "soc", URL: srv.URL + "/hook?token=x", Secret: "receiver-secret-123",
		MinSeverity: finding.SeverityHigh, Categories: []finding.Category{finding.CategoryMalware}, Enabled: true, CreatedBy: "admin", CreatedAt: now}))

	// Stored before the notifier started: not sent.
	old := finding.Finding{ID: finding.NewID(), RuleID: "malware.eicar-test-file", Category: finding.CategoryMalware, Severity: finding.SeverityCritical,
		Title: "old", Time: now.Add(-time.Minute), DedupKey: "old"}
	_, err = st.IngestFindings(ctx, "h-1", []finding.Finding{old}, time.Hour)
	must(err)

	n := New(Config{Poll: 20 * time.Millisecond, Backoff: 10 * time.Millisecond}, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	go n.Run(ctx)
	time.Sleep(50 * time.Millisecond)

	later := st.Now().Add(time.Second)
	fs := []finding.Finding{
		{ID: finding.NewID(), RuleID: "malware.eicar-test-file", Category: finding.CategoryMalware, Severity: finding.SeverityCritical,
			Title: "EICAR test file in /tmp", Time: later, DedupKey: "/tmp/eicar.com", Evidence: finding.Evidence{Path: "/tmp/eicar.com"}},
		{ID: finding.NewID(), RuleID: "malware.eicar-test-file", Category: finding.CategoryMalware, Severity: finding.SeverityLow,
			Title: "too low", Time: later, DedupKey: "low"},
		{ID: finding.NewID(), RuleID: "bruteforce.ssh-password-guessing", Category: finding.CategoryBruteForce, Severity: finding.SeverityCritical,
			Title: "other category", Time: later, DedupKey: "192.0.2.1"},
	}
	_, err = st.IngestFindings(ctx, "h-1", fs, time.Hour)
	must(err)

	deadline := time.Now().Add(10 * time.Second)
	for n.Delivered.Load()+n.Failed.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.got) != 1 || rc.got[0].Event.Title != "EICAR test file in /tmp" || rc.got[0].Type != "event.new" {
		t.Fatalf("received %+v, want exactly the critical malware event", rc.got)
	}
	if rc.attempts != 3 || rc.badSig != 0 {
		t.Errorf("attempts %d (want 2 refused + 1 accepted), bad signatures %d", rc.attempts, rc.badSig)
	}
	hooks, err := st.Webhooks(ctx)
	must(err)
	if hooks[0].LastStatus != "200 OK" {
		t.Errorf("last status %q, want 200 OK", hooks[0].LastStatus)
	}
}

func TestFullQueueDropsAndCounts(t *testing.T) {
	n := New(Config{QueueSize: 1}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	hook := store.Webhook{ID: "wh-1", Name: "soc", Enabled: true}
	e := store.Event{ID: "ev-1", Severity: "high", Category: finding.CategoryMalware}
	n.dispatch([]store.Webhook{hook}, e)
	n.dispatch([]store.Webhook{hook}, e)
	if n.Dropped.Load() != 1 || len(n.queue) != 1 {
		t.Errorf("dropped %d, queued %d; want 1 and 1", n.Dropped.Load(), len(n.queue))
	}
}
