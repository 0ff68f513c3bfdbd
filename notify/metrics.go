package notify

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Results of a delivery, as the result label of keyd_notify_deliveries_total says.
const (
	resultDelivered = "delivered"
	resultRejected  = "rejected"   // a permanent failure: given up at once
	resultGaveUp    = "gave_up"    // retried until give_up_after passed
	resultNotQueued = "not_queued" // the outbox could not be written: never sent
)

// Metrics are registered on the default registry, which /metrics serves.
var (
	deliveriesTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "keyd_notify_deliveries_total",
		Help: "Finished deliveries of events to webhooks and exec hooks, by kind and result " +
			"(delivered, rejected, gave_up, not_queued).",
	}, []string{"kind", "result"})
	attemptsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "keyd_notify_attempts_total",
		Help: "Delivery attempts, by kind and outcome (ok, retry, fail).",
	}, []string{"kind", "outcome"})
	pendingGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "keyd_notify_pending",
		Help: "Deliveries waiting in the outbox, by kind.",
	}, []string{"kind"})
)
