package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Per-ChatCluster metrics, served beside controller-runtime's on the manager's /metrics.
var (
	reconcileTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parley_operator_reconcile_total",
		Help: "Reconciles of a ChatCluster by outcome (success, error, paused).",
	}, []string{"namespace", "name", "outcome"})
	readyGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "parley_operator_chatcluster_ready",
		Help: "1 when the ChatCluster's Ready condition is True, else 0.",
	}, []string{"namespace", "name"})
)

func init() {
	metrics.Registry.MustRegister(reconcileTotal, readyGauge)
}

// forgetMetrics drops a deleted ChatCluster's series so they do not linger.
func forgetMetrics(namespace, name string) {
	l := prometheus.Labels{"namespace": namespace, "name": name}
	reconcileTotal.DeletePartialMatch(l)
	readyGauge.DeletePartialMatch(l)
}
