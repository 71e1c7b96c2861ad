package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// Webhook is a notification target: new events at or above MinSeverity, of Categories (all when
// empty), are POSTed to URL as JSON, signed with Secret.
type Webhook struct {
	ID          string             `json:"id"`
	Name        string             `json:"name"`
	URL         string             `json:"url"`
	Secret      string             `json:"-"` // HMAC-SHA256 key; shown only when created
	MinSeverity finding.Severity   `json:"-"`
	Severity    string             `json:"min_severity"`
	Categories  []finding.Category `json:"categories"`
	Enabled     bool               `json:"enabled"`
	CreatedBy   string             `json:"created_by"`
	CreatedAt   time.Time          `json:"created_at"`
	LastStatus  string             `json:"last_status,omitempty"` // of the latest delivery
	LastAttempt time.Time          `json:"last_attempt,omitzero"`
}

// Wants reports whether an event of this severity and category goes to the webhook.
func (w Webhook) Wants(sev finding.Severity, cat finding.Category) bool {
	if !w.Enabled || sev < w.MinSeverity {
		return false
	}
	if len(w.Categories) == 0 {
		return true
	}
	for _, c := range w.Categories {
		if c == cat {
			return true
		}
	}
	return false
}

// CreateWebhook stores a webhook.
func (s *Store) CreateWebhook(ctx context.Context, w Webhook) error {
	cats := make([]string, len(w.Categories))
	for i, c := range w.Categories {
		cats[i] = string(c)
	}
	_, err := s.exec(ctx, `INSERT INTO webhooks(id, name, url, secret, min_severity, categories, enabled, created_by, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, w.ID, w.Name, w.URL, w.Secret, int(w.MinSeverity), strings.Join(cats, ","),
		boolInt(w.Enabled), w.CreatedBy, ms(w.CreatedAt))
	if err != nil {
		return fmt.Errorf("create webhook: %w", err)
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Webhooks returns every webhook, secrets included (for the notifier; the API never shows them).
func (s *Store) Webhooks(ctx context.Context) ([]Webhook, error) {
	rows, err := s.query(ctx, `SELECT id, name, url, secret, min_severity, categories, enabled, created_by, created_at,
		last_status, last_attempt FROM webhooks ORDER BY name, id`)
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	defer rows.Close()
	var out []Webhook
	for rows.Next() {
		var w Webhook
		var sev, enabled int
		var cats string
		var created, last int64
		if err := rows.Scan(&w.ID, &w.Name, &w.URL, &w.Secret, &sev, &cats, &enabled, &w.CreatedBy, &created,
			&w.LastStatus, &last); err != nil {
			return nil, err
		}
		w.MinSeverity, w.Enabled = finding.Severity(sev), enabled != 0
		w.Severity = w.MinSeverity.String()
		w.Categories = []finding.Category{}
		for c := range strings.SplitSeq(cats, ",") {
			if c != "" {
				w.Categories = append(w.Categories, finding.Category(c))
			}
		}
		w.CreatedAt, w.LastAttempt = fromMS(created), fromMS(last)
		out = append(out, w)
	}
	return out, rows.Err()
}

// SetWebhookEnabled switches a webhook on or off.
func (s *Store) SetWebhookEnabled(ctx context.Context, id string, on bool) error {
	res, err := s.exec(ctx, `UPDATE webhooks SET enabled = ? WHERE id = ?`, boolInt(on), id)
	return affectedOne(res, err, "webhook "+id)
}

// DeleteWebhook removes a webhook.
func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	res, err := s.exec(ctx, `DELETE FROM webhooks WHERE id = ?`, id)
	return affectedOne(res, err, "webhook "+id)
}

// RecordWebhookDelivery notes the outcome of the latest delivery to a webhook.
func (s *Store) RecordWebhookDelivery(ctx context.Context, id, status string) error {
	_, err := s.exec(ctx, `UPDATE webhooks SET last_status = ?, last_attempt = ? WHERE id = ?`, status, ms(s.Now()), id)
	return err
}

// EventsCreatedAfter returns events first seen after the cursor (first_seen, id), oldest first:
// the notifier's feed of new events.
func (s *Store) EventsCreatedAfter(ctx context.Context, after time.Time, afterID string, limit int) ([]Event, error) {
	rows, err := s.query(ctx, `SELECT `+eventCols+` FROM events e LEFT JOIN hosts h ON h.id = e.host_id
		WHERE e.first_seen > ? OR (e.first_seen = ? AND e.id > ?) ORDER BY e.first_seen, e.id LIMIT ?`,
		ms(after), ms(after), afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("new events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
