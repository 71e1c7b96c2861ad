package agentapi

import (
	"encoding/json"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the agent API's Prometheus series.
type Metrics struct {
	connected       prometheus.Gauge
	streamsRefused  prometheus.Counter
	heartbeats      prometheus.Counter
	findings        *prometheus.CounterVec
	ingestSeconds   prometheus.Histogram
	enrollments     *prometheus.CounterVec
	tasksDispatched prometheus.Counter
	protocolErrors  prometheus.Counter
	hashLookups     prometheus.Counter
}

// NewMetrics registers the series with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		connected:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "palisade_agents_connected", Help: "Agents with a live stream."}),
		streamsRefused:  prometheus.NewCounter(prometheus.CounterOpts{Name: "palisade_agent_streams_refused_total", Help: "Agent connections refused (unknown, revoked or superseded certificate)."}),
		heartbeats:      prometheus.NewCounter(prometheus.CounterOpts{Name: "palisade_agent_heartbeats_total", Help: "Heartbeats received."}),
		findings:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "palisade_findings_received_total", Help: "Findings received, by outcome (new event, aggregated, duplicate redelivery, rejected)."}, []string{"result"}),
		ingestSeconds:   prometheus.NewHistogram(prometheus.HistogramOpts{Name: "palisade_ingest_batch_seconds", Help: "Time to store one finding batch.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		enrollments:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "palisade_enrollments_total", Help: "Enrollment attempts by result."}, []string{"result"}),
		tasksDispatched: prometheus.NewCounter(prometheus.CounterOpts{Name: "palisade_tasks_dispatched_total", Help: "Tasks sent to agents."}),
		protocolErrors:  prometheus.NewCounter(prometheus.CounterOpts{Name: "palisade_agent_protocol_errors_total", Help: "Malformed or unknown messages from agents."}),
		hashLookups:     prometheus.NewCounter(prometheus.CounterOpts{Name: "palisade_reputation_lookups_total", Help: "File hashes agents asked the reputation store about."}),
	}
	reg.MustRegister(m.connected, m.streamsRefused, m.heartbeats, m.findings, m.ingestSeconds, m.enrollments, m.tasksDispatched, m.protocolErrors, m.hashLookups)
	return m
}

func jsonValid(b []byte) bool { return json.Valid(b) }
