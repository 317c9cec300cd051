"""Self-metrics check with a real Prometheus parser: scrape otel-delta's `/metrics`, parse it with the Python
`prometheus_client` parsers (the OpenMetrics one its Content-Type names, and the classic text one a Prometheus
text scraper uses), and check the span counters against the rows the Python `deltalake` package reads back.

Usage: scrape_metrics.py METRICS_URL TABLE_PATH
  TRANSPORT=grpc: the spans came over gRPC (default http); REFUSED=401: one request was refused with that status.
"""
import os
import sys
import urllib.request

from deltalake import DeltaTable
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families as text_families

metrics_url, table_path = sys.argv[1], sys.argv[2]
with urllib.request.urlopen(metrics_url, timeout=10) as response:
    content_type = response.headers["Content-Type"]
    text = response.read().decode("utf-8")
assert content_type.startswith("application/openmetrics-text"), content_type


def samples(families):
    """(sample name, sorted labels) -> value."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


strict = samples(openmetrics_families(text))
classic = samples(text_families(text))
transport = os.environ.get("TRANSPORT", "http")
http = (("receiver", "otlp"), ("transport", transport))
refused_status = os.environ.get("REFUSED")
rows = DeltaTable(table_path).to_pyarrow_table().num_rows
for parsed in (strict, classic):
    accepted = parsed[("otelcol_receiver_accepted_spans_total", http)]
    sent = parsed[("otelcol_exporter_sent_spans_total", (("exporter", "delta"),))]
    assert accepted == sent == rows, (accepted, sent, rows)
    assert parsed[("otelcol_receiver_refused_spans_total", http)] == 0
    assert parsed[("otelcol_exporter_send_failed_spans_total", (("exporter", "delta"),))] == 0
    refused = {k: v for k, v in parsed.items() if k[0] == "otel_delta_refused_requests_total" and v}
    if refused_status:
        assert [(dict(k[1])["status"], v) for k, v in refused.items()] == [(refused_status, 1)], refused
    else:
        assert not refused, f"no request was refused: {refused}"
    # One version per table (spans, logs): this table's is labelled with its URL.
    table_name = table_path.rstrip("/").rsplit("/", 1)[-1]
    versions = [
        v
        for (name, labels), v in parsed.items()
        if name == "otel_delta_table_version" and dict(labels)["table"].rstrip("/").endswith("/" + table_name)
    ]
    assert versions == [DeltaTable(table_path).version()], versions
print(f"metrics: {int(rows)} spans accepted and sent, as read back")
