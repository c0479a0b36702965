// Package dashboards holds the tests of the Grafana dashboard the Helm chart
// ships (charts/database-operator/dashboards/databases.json): it must be
// valid JSON, every panel must query Prometheus, and every metric it queries
// must be one the exporters, kube-state-metrics, the kubelet or the operator
// produce, as listed with their sources in internal/metricnames/metrics.txt.
package dashboards
