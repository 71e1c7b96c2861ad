// Package notify delivers new events to the operators' webhooks: it follows the store's feed of
// new events, matches each against every enabled webhook (minimum severity, categories) and
// POSTs the event as JSON, signed with HMAC-SHA256 under the webhook's secret. Deliveries go
// through a bounded queue to a few workers and are retried with backoff; when the queue is full
// deliveries are dropped and counted rather than held in memory without bound. Secrets and
// receiver URLs' queries are never logged.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/finding"
)

// SignatureHeader carries "sha256=<hex HMAC-SHA256 of the body>".
const SignatureHeader = "X-Palisade-Signature"

// Config tunes the notifier; zero values take the defaults.
type Config struct {
	Poll      time.Duration // how often the feed is read; default 2s
	QueueSize int           // deliveries waiting at most; default 1000
	Workers   int           // deliveries at once; default 2
	Attempts  int           // tries per delivery; default 4 (one try and 3 retries)
	Backoff   time.Duration // first retry delay, doubled each time; default 1s
	Client    *http.Client  // default: 10s timeout
}

// Payload is the JSON body of a delivery.
type Payload struct {
	Type  string      `json:"type"` // "event.new"
	Event store.Event `json:"event"`
}

// Notifier follows new events and delivers them.
type Notifier struct {
	cfg   Config
	store *store.Store
	log   *slog.Logger
	queue chan delivery

	Delivered, Failed, Dropped atomic.Int64
}

type delivery struct {
	hook  store.Webhook
	event string
	body  []byte
}

// New returns a notifier over st.
func New(cfg Config, st *store.Store, log *slog.Logger) *Notifier {
	if cfg.Poll <= 0 {
		cfg.Poll = 2 * time.Second
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1000
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 4
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	return &Notifier{cfg: cfg, store: st, log: log, queue: make(chan delivery, cfg.QueueSize)}
}

// Run follows events first seen from now on until ctx ends: events stored before the console
// started are not sent again after a restart.
func (n *Notifier) Run(ctx context.Context) {
	for range n.cfg.Workers {
		go n.work(ctx)
	}
	after, afterID := n.store.Now(), ""
	t := time.NewTicker(n.cfg.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hooks, err := n.store.Webhooks(ctx)
		if err != nil {
			if ctx.Err() == nil {
				n.log.Warn("read webhooks", "err", err)
			}
			continue
		}
		for {
			events, err := n.store.EventsCreatedAfter(ctx, after, afterID, 500)
			if err != nil {
				if ctx.Err() == nil {
					n.log.Warn("read new events", "err", err)
				}
				break
			}
			for _, e := range events {
				n.dispatch(hooks, e)
				after, afterID = e.FirstSeen, e.ID
			}
			if len(events) < 500 {
				break
			}
		}
	}
}

func (n *Notifier) dispatch(hooks []store.Webhook, e store.Event) {
	sev, err := finding.ParseSeverity(e.Severity)
	if err != nil {
		return
	}
	var body []byte
	for _, h := range hooks {
		if !h.Wants(sev, e.Category) {
			continue
		}
		if body == nil {
			body, _ = json.Marshal(Payload{Type: "event.new", Event: e})
		}
		select {
		case n.queue <- delivery{hook: h, event: e.ID, body: body}:
		default:
			n.Dropped.Add(1)
			n.log.Warn("webhook queue full: delivery dropped", "webhook", h.Name, "event", e.ID)
		}
	}
}

func (n *Notifier) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-n.queue:
			n.deliver(ctx, d)
		}
	}
}

// Sign returns the signature header value of body under secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (n *Notifier) deliver(ctx context.Context, d delivery) {
	wait := n.cfg.Backoff
	var status string
	for attempt := 1; attempt <= n.cfg.Attempts; attempt++ {
		var retry bool
		status, retry = n.post(ctx, d)
		if !retry {
			break
		}
		if attempt == n.cfg.Attempts {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait *= 2
	}
	ok := len(status) > 0 && status[0] == '2'
	if ok {
		n.Delivered.Add(1)
	} else {
		n.Failed.Add(1)
		n.log.Warn("webhook delivery failed", "webhook", d.hook.Name, "url", redact(d.hook.URL), "event", d.event, "status", status)
	}
	if err := n.store.RecordWebhookDelivery(ctx, d.hook.ID, status); err != nil && ctx.Err() == nil {
		n.log.Warn("record webhook delivery", "webhook", d.hook.Name, "err", err)
	}
}

// post makes one attempt; it reports the outcome and whether another attempt may succeed.
func (n *Notifier) post(ctx context.Context, d delivery) (status string, retry bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.hook.URL, bytes.NewReader(d.body))
	if err != nil {
		return "bad URL", false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Palisade-Webhook/1")
	req.Header.Set("X-Palisade-Event", d.event)
	req.Header.Set(SignatureHeader, Sign(d.hook.Secret, d.body))
	resp, err := n.cfg.Client.Do(req)
	if err != nil {
		// The error text names the URL; keep only its kind so a query token is not stored.
		return "error: " + errKind(err), true
	}
	resp.Body.Close()
	return resp.Status, resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
}

func errKind(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	u.RawQuery = ""
	u.User = nil
	return u.String()
}
