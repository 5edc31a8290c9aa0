package benchutil

import "testing"

func TestMetric(t *testing.T) {
	text := []byte(`# HELP rest_client_requests_total Number of HTTP requests
# TYPE rest_client_requests_total counter
rest_client_requests_total{code="200",host="10.0.0.1:443",method="GET"} 120
rest_client_requests_total{code="201",host="10.0.0.1:443",method="POST"} 3.5e+01
rest_client_requests_total_other 7
go_memstats_heap_inuse_bytes 1.2345e+08
`)
	if sum, found := MetricSum(text, "rest_client_requests_total"); !found || sum != 155 {
		t.Errorf("MetricSum = %v, %v; want 155, true", sum, found)
	}
	if _, found := MetricSum(text, "rest_client_requests"); found {
		t.Error("MetricSum found a metric only by its prefix")
	}
	if v := Metric(text, "go_memstats_heap_inuse_bytes"); v != 1.2345e+08 {
		t.Errorf("Metric = %v", v)
	}
	if v := Metric(text, `rest_client_requests_total{code="201",host="10.0.0.1:443",method="POST"}`); v != 35 {
		t.Errorf("Metric with labels = %v", v)
	}
}
