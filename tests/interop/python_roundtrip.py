"""Interop check with other implementations: the OpenTelemetry *Python* SDK exports spans over OTLP/HTTP
protobuf to a running otel-delta, then the Python `deltalake` package (another Delta reader) reads the table.

Usage: python_roundtrip.py ENDPOINT|- TABLE_PATH_OR_URL EXPECTED_ROWS
  ENDPOINT "-" reads only; EXPORT_ONLY=1 exports only. s3:// tables use the AWS_* environment (the test server).
  LAYOUT=v2: the table is in the v2 layout; its VARIANT values are decoded by pyspark's VariantVal (the Spark
  Connect client package: no JVM), a decoder independent of otel-delta's encoder.
  CA_FILE: an https ENDPOINT's certificate is checked against this CA bundle (PEM); CLIENT_CERT and CLIENT_KEY:
  the client certificate and key (PEM) presented for mTLS.
  OTLP_PROTOCOL=grpc: export with the SDK's gRPC exporter (ENDPOINT is then the listener's URL, no path);
  BEARER_TOKEN: sent as `authorization: Bearer ...`; WRONG_TOKEN_FIRST=1: an export with a wrong token must fail
  first (401 / UNAUTHENTICATED, nothing written).
"""
import os
import sys

from deltalake import DeltaTable
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

endpoint, table_path, expected_rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
SPANS = 120


def make_exporter(token):
    headers = {"authorization": f"Bearer {token}"} if token else None
    if os.environ.get("OTLP_PROTOCOL") == "grpc":
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter

        def read(name):
            path = os.environ.get(name)
            return open(path, "rb").read() if path else None

        credentials = grpc.ssl_channel_credentials(
            root_certificates=read("CA_FILE"), private_key=read("CLIENT_KEY"), certificate_chain=read("CLIENT_CERT")
        )
        return GrpcSpanExporter(endpoint=endpoint, credentials=credentials, headers=headers, timeout=30)
    return OTLPSpanExporter(
        endpoint=endpoint,
        timeout=30,
        headers=headers,
        certificate_file=os.environ.get("CA_FILE"),
        client_certificate_file=os.environ.get("CLIENT_CERT"),
        client_key_file=os.environ.get("CLIENT_KEY"),
    )


def wrong_token_is_refused():
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    captured = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(captured))
    with provider.get_tracer("interop.python").start_as_current_span("not stored"):
        pass
    result = make_exporter("not-a-token").export(captured.get_finished_spans())
    assert result == SpanExportResult.FAILURE, result


def export_spans():
    exporter = make_exporter(os.environ.get("BEARER_TOKEN"))
    results = []
    original_export = exporter.export

    def export(spans):
        result = original_export(spans)
        results.append(result)
        return result

    exporter.export = export
    provider = TracerProvider(resource=Resource.create({"service.name": "py-agent"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=50))
    tracer = provider.get_tracer("interop.python", "0.1")
    for i in range(SPANS // 2):
        with tracer.start_as_current_span(f"agent.step {i}") as parent:
            parent.set_attribute("gen_ai.prompt", f"question number {i}")
            parent.set_attribute("gen_ai.usage.input_tokens", i)
            parent.set_attribute("tags", ["a", "b"])
            with tracer.start_as_current_span("llm.call", kind=trace.SpanKind.CLIENT) as child:
                child.add_event("token", {"index": 1})
    provider.force_flush()
    provider.shutdown()
    assert results and all(r == SpanExportResult.SUCCESS for r in results), results


if endpoint != "-":
    if os.environ.get("WRONG_TOKEN_FIRST") == "1":
        wrong_token_is_refused()
    export_spans()
if os.environ.get("EXPORT_ONLY") == "1":
    sys.stdout.flush()
    os._exit(0)

storage_options = None
if table_path.startswith("s3://"):
    storage_options = {
        key: os.environ[key]
        for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ALLOW_HTTP")
        if key in os.environ
    }
table = DeltaTable(table_path, storage_options=storage_options)
rows = table.to_pyarrow_table().to_pylist()
assert len(rows) == expected_rows, (len(rows), expected_rows)
assert len({(r["trace_id"], r["span_id"]) for r in rows}) == expected_rows, "duplicate spans"
step = next(r for r in rows if r["name"] == "agent.step 7")
child = next(r for r in rows if r["name"] == "llm.call" and r["trace_id"] == step["trace_id"])
assert step["instrumentation_scope"]["name"] == "interop.python"
assert child["events"][0]["name"] == "token"
assert len(step["trace_id"]) == 32 and child["parent_span_id"] == step["span_id"], child
if os.environ.get("LAYOUT") == "v2":
    from pyspark.sql.types import VariantVal

    def variant(column):
        return VariantVal(column["value"], column["metadata"]).toPython()

    attributes = variant(step["attributes"])
    assert attributes["gen_ai.prompt"] == "question number 7", attributes
    assert attributes["gen_ai.usage.input_tokens"] == 7, attributes
    assert attributes["tags"] == ["a", "b"], attributes
    assert variant(step["resource"]["attributes"])["service.name"] == "py-agent"
    assert variant(child["events"][0]["attributes"]) == {"index": 1}
    assert step["parent_span_id"] is None and step["service_name"] == "py-agent", step
    assert child["kind"] == "SPAN_KIND_CLIENT", child
    assert len({r["record_id"] for r in rows}) == expected_rows, "record_id repeated"
    assert step["date"] == step["time"].date(), step
else:
    attributes = dict(step["attributes"])
    assert attributes["gen_ai.prompt"] == "question number 7", attributes
    assert attributes["gen_ai.usage.input_tokens"] == "7", attributes
    assert attributes["tags"] == '["a","b"]', attributes
    assert step["parent_span_id"] == "", step
    assert dict(step["resource"]["attributes"])["service.name"] == "py-agent"
    assert child["kind"] == "CLIENT", child
assert table.metadata().configuration.get("otel.schemaVersion") == os.environ.get("LAYOUT", "v1")
print(f"python interop: {len(rows)} spans read back by deltalake from {table_path} ({table.version()=})")
# deltalake's native threads can abort the interpreter's teardown ("terminate called without an active
# exception"); every check above has passed, so leave without it.
sys.stdout.flush()
os._exit(0)
