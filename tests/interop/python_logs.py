"""Interop check of the logs path: Python's `logging`, through the OpenTelemetry Python SDK's LoggingHandler and
OTLP log exporter, into a running otel-delta; then the Python `deltalake` package reads the logs table and every
row is compared field by field with what the SDK encoded (its own OTLP encoder, applied to the very batches it
exported).

Usage: python_logs.py ENDPOINT LOGS_TABLE_PATH
  ENDPOINT: the OTLP/HTTP logs URL (…/v1/logs), or with OTLP_PROTOCOL=grpc the listener's URL.
  LAYOUT=v2: the table is in the v2 layout; its VARIANT values are decoded by pyspark's VariantVal.
  CA_FILE, BEARER_TOKEN: as python_roundtrip.py.
"""
import json
import logging
import os
import sys

from deltalake import DeltaTable
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

endpoint, table_path = sys.argv[1], sys.argv[2]
V2 = os.environ.get("LAYOUT") == "v2"
RECORDS = 100


def make_exporter():
    token = os.environ.get("BEARER_TOKEN")
    headers = {"authorization": f"Bearer {token}"} if token else None
    ca = os.environ.get("CA_FILE")
    if os.environ.get("OTLP_PROTOCOL") == "grpc":
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

        credentials = grpc.ssl_channel_credentials(open(ca, "rb").read()) if ca else None
        return OTLPLogExporter(
            endpoint=endpoint, credentials=credentials, headers=headers, timeout=30, insecure=ca is None
        )
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    return OTLPLogExporter(endpoint=endpoint, headers=headers, timeout=30, certificate_file=ca)


def export_logs():
    """Log RECORDS lines through the SDK; return the export requests it encoded."""
    exporter = make_exporter()
    sent, results = [], []
    original_export = exporter.export

    def export(batch):
        sent.append(encode_logs(batch))
        result = original_export(batch)
        results.append(result)
        return result

    exporter.export = export
    provider = LoggerProvider(resource=Resource.create({"service.name": "py-logs", "deployment.environment": "ci"}))
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter, max_export_batch_size=40))
    logger = logging.getLogger("interop.logs")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(LoggingHandler(level=logging.DEBUG, logger_provider=provider))
    tracer = TracerProvider().get_tracer("interop.logs")
    levels = [logger.debug, logger.info, logger.warning, logger.error]
    for i in range(RECORDS):
        log = levels[i % 4]
        if i % 2:
            # Inside a span: the record carries its trace and span ids.
            with tracer.start_as_current_span(f"step {i}"):
                log("step %d done", i, extra={"step": i, "ratio": i / 4, "ok": i % 3 == 0, "user": f"u{i}"})
        else:
            log("plain line %d", i, extra={"step": i})
    provider.force_flush()
    provider.shutdown()
    assert results and all(r.name == "SUCCESS" for r in results), results
    return sent


def any_value(v):
    """An OTLP AnyValue as a Python value."""
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind)


def bag_v1(key_values):
    """A v1 MAP<STRING, STRING> bag: strings as they are, anything else as JSON."""

    def text(value):
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))

    return {kv.key: text(any_value(kv.value)) for kv in key_values}


def bag_v2(key_values):
    return {kv.key: any_value(kv.value) for kv in key_values}


def expected_rows(sent):
    """What each log record must be in the table, by its body (every body differs)."""
    bag = bag_v2 if V2 else bag_v1
    rows = {}
    for request in sent:
        for rl in request.resource_logs:
            for sl in rl.scope_logs:
                for r in sl.log_records:
                    severity = logs_pb2.SeverityNumber.Name(r.severity_number)

                    def id_of(raw):
                        return raw.hex() if raw else (None if V2 else "")

                    rows[any_value(r.body)] = {
                        "time_unix_nano": r.time_unix_nano,
                        "observed_time_unix_nano": r.observed_time_unix_nano,
                        "severity_number": severity if V2 else severity.removeprefix("SEVERITY_NUMBER_"),
                        "severity_text": r.severity_text,
                        "trace_id": id_of(r.trace_id),
                        "span_id": id_of(r.span_id),
                        "flags": r.flags,
                        "event_name": r.event_name,
                        "attributes": bag(r.attributes),
                        "resource_attributes": bag(rl.resource.attributes),
                        "scope": (sl.scope.name, sl.scope.version),
                    }
    return rows


def stored_rows(rows):
    """The table's rows in the shape of `expected_rows`."""
    if V2:
        from pyspark.sql.types import VariantVal

        def bag(column):
            return VariantVal(column["value"], column["metadata"]).toPython() or {}

        body = bag
    else:

        def bag(column):
            return dict(column or [])

        def body(column):
            return column

    stored = {}
    for row in rows:
        stored[body(row["body"])] = {
            "time_unix_nano": row["time_unix_nano"],
            "observed_time_unix_nano": row["observed_time_unix_nano"],
            "severity_number": row["severity_number"],
            "severity_text": row["severity_text"],
            "trace_id": row["trace_id"],
            "span_id": row["span_id"],
            "flags": row["flags"],
            "event_name": row["event_name"],
            "attributes": bag(row["attributes"]),
            "resource_attributes": bag(row["resource"]["attributes"]),
            "scope": (row["instrumentation_scope"]["name"], row["instrumentation_scope"]["version"]),
        }
    return stored


sent = export_logs()
expected = expected_rows(sent)
assert len(expected) == RECORDS, len(expected)
table = DeltaTable(table_path)
rows = table.to_pyarrow_table().to_pylist()
assert len(rows) == RECORDS, (len(rows), RECORDS)
stored = stored_rows(rows)
assert stored.keys() == expected.keys(), sorted(set(stored) ^ set(expected))[:5]
for body, want in expected.items():
    assert stored[body] == want, (body, stored[body], want)
some = expected["step 7 done"]
assert len(some["trace_id"]) == 32 and some["severity_number"].endswith("ERROR"), some
assert some["attributes"]["user"] == "u7" and some["resource_attributes"]["service.name"] == "py-logs", some
if V2:
    assert all(r["service_name"] == "py-logs" for r in rows)
    assert len({r["record_id"] for r in rows}) == RECORDS, "record_id repeated"
assert table.metadata().configuration.get("otel.schemaVersion") == os.environ.get("LAYOUT", "v1")
print(f"python logs interop: {len(rows)} log records read back by deltalake from {table_path}, field by field")
# As python_roundtrip.py: leave without deltalake's teardown.
sys.stdout.flush()
os._exit(0)
