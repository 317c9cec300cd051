"""Helper for start.sh: wait for the test object stores, create the bucket/container, verify them.

Runs with the moto venv's python (boto3 comes with moto); the Azure side uses only the standard
library (a minimal SharedKey signer), so no Azure SDK is needed.

    stores.py wait URL SECONDS      exit 0 once URL answers any HTTP status, 1 on timeout
    stores.py setup                 create the S3 bucket and the Azure container (idempotent)
    stores.py verify                check the conditional-write behaviours the Delta writer relies on

Endpoints come from the same environment variables the tests use (see start.sh / env.sh).
"""

import base64
import hashlib
import hmac
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from email.utils import formatdate

S3_ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
AZ_URL = os.environ.get("AZURITE_BLOB_STORAGE_URL", "http://127.0.0.1:10000").rstrip("/")
AZ_ACCOUNT = os.environ.get("AZURE_STORAGE_ACCOUNT_NAME", "devstoreaccount1")
AZ_KEY = os.environ.get(
    "AZURE_STORAGE_ACCOUNT_KEY",
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
)
BUCKET = os.environ.get("OTEL_DELTA_TEST_BUCKET", "otel-delta-test")


def wait(url: str, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return 0
        except urllib.error.HTTPError:
            return 0  # any HTTP answer means the server is up
        except OSError:
            time.sleep(0.25)
    return 1


def s3_client():
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=S3_ENDPOINT,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def az(method, path, body=b"", headers=None, query=None):
    """One Blob-service request signed with SharedKey (path-style emulator URL)."""
    headers = dict(headers or {})
    query = dict(query or {})
    headers.setdefault("Content-Type", "application/octet-stream")
    headers["x-ms-date"] = formatdate(usegmt=True)
    headers["x-ms-version"] = "2021-08-06"
    low = {k.lower(): v for k, v in headers.items()}
    ms = "".join(f"{k}:{low[k]}\n" for k in sorted(low) if k.startswith("x-ms-"))
    resource = f"/{AZ_ACCOUNT}/{AZ_ACCOUNT}{path}" + "".join(f"\n{k}:{v}" for k, v in sorted(query.items()))
    fields = ["content-encoding", "content-language", None, "content-md5", "content-type", "date",
              "if-modified-since", "if-match", "if-none-match", "if-unmodified-since", "range"]
    parts = [method] + [(str(len(body)) if body else "") if f is None else low.get(f, "") for f in fields]
    to_sign = "\n".join(parts) + "\n" + ms + resource
    sig = hmac.new(base64.b64decode(AZ_KEY), to_sign.encode(), hashlib.sha256).digest()
    headers["Authorization"] = f"SharedKey {AZ_ACCOUNT}:{base64.b64encode(sig).decode()}"
    url = f"{AZ_URL}/{AZ_ACCOUNT}{path}" + ("?" + urllib.parse.urlencode(query) if query else "")
    req = urllib.request.Request(url, data=body if method in ("PUT", "POST") else None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def setup() -> int:
    import botocore.exceptions

    s3 = s3_client()
    try:
        s3.head_bucket(Bucket=BUCKET)
        print(f"S3: bucket {BUCKET} already exists")
    except botocore.exceptions.ClientError:
        s3.create_bucket(Bucket=BUCKET)
        print(f"S3: created bucket {BUCKET}")
    status, body = az("PUT", f"/{BUCKET}", query={"restype": "container"})
    if status == 201:
        print(f"Azurite: created container {BUCKET}")
    elif status == 409:
        print(f"Azurite: container {BUCKET} already exists")
    else:
        print(f"Azurite: creating container {BUCKET} failed: {status} {body[:300]!r}", file=sys.stderr)
        return 1
    return 0


def verify() -> int:
    """The behaviours deltalake/object_store need; prints one line each, exit 1 on any mismatch."""
    import botocore.exceptions

    failures = 0
    checks = 0

    def check(name, got, want):
        nonlocal failures, checks
        ok = got in want
        checks += 1
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {got} (want {'/'.join(map(str, want))})")

    def s3_status(fn, **kw):
        try:
            return fn(**kw)["ResponseMetadata"]["HTTPStatusCode"]
        except botocore.exceptions.ClientError as e:
            return e.response["ResponseMetadata"]["HTTPStatusCode"]

    s3 = s3_client()
    key = f"_verify/{os.getpid()}-{time.time_ns()}"
    check("S3 PUT If-None-Match:* absent", s3_status(s3.put_object, Bucket=BUCKET, Key=key, Body=b"1", IfNoneMatch="*"), (200,))
    check("S3 PUT If-None-Match:* existing", s3_status(s3.put_object, Bucket=BUCKET, Key=key, Body=b"2", IfNoneMatch="*"), (412,))
    check("S3 object unchanged", s3.get_object(Bucket=BUCKET, Key=key)["Body"].read(), (b"1",))
    part = os.urandom(5 * 1024 * 1024)
    up = s3.create_multipart_upload(Bucket=BUCKET, Key=key + "-mpu")["UploadId"]
    parts = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=BUCKET, Key=key + "-mpu", UploadId=up, PartNumber=n, Body=part)["ETag"]} for n in (1, 2)]
    check("S3 multipart complete", s3_status(s3.complete_multipart_upload, Bucket=BUCKET, Key=key + "-mpu", UploadId=up, MultipartUpload={"Parts": parts}), (200,))
    check("S3 multipart size", s3.head_object(Bucket=BUCKET, Key=key + "-mpu")["ContentLength"], (2 * len(part),))
    up = s3.create_multipart_upload(Bucket=BUCKET, Key=key + "-abort")["UploadId"]
    s3.upload_part(Bucket=BUCKET, Key=key + "-abort", UploadId=up, PartNumber=1, Body=part)
    check("S3 multipart abort", s3_status(s3.abort_multipart_upload, Bucket=BUCKET, Key=key + "-abort", UploadId=up), (204,))
    # deltalake-aws defaults copy_if_not_exists=multipart: UploadPartCopy + Complete with If-None-Match.
    up = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    etag = s3.upload_part_copy(Bucket=BUCKET, Key=key, UploadId=up, PartNumber=1, CopySource={"Bucket": BUCKET, "Key": key + "-mpu"})["CopyPartResult"]["ETag"]
    check("S3 complete-multipart If-None-Match:* existing", s3_status(s3.complete_multipart_upload, Bucket=BUCKET, Key=key, UploadId=up, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}, IfNoneMatch="*"), (412,))
    s3.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=up)
    for k in (key, key + "-mpu"):
        s3.delete_object(Bucket=BUCKET, Key=k)

    blob = f"/{BUCKET}/_verify/{os.getpid()}-{time.time_ns()}"
    create = {"x-ms-blob-type": "BlockBlob", "If-None-Match": "*"}
    check("Azurite PUT If-None-Match:* absent", az("PUT", blob, b"1", create)[0], (201,))
    check("Azurite PUT If-None-Match:* existing", az("PUT", blob, b"2", create)[0], (409, 412))
    check("Azurite blob unchanged", az("GET", blob)[1], (b"1",))
    check("Azurite delete", az("DELETE", blob)[0], (202,))
    # Deliberately not "N passed, N failed": CI reads that shape as a test runner's closing line.
    print(f"stores verify: {checks - failures} of {checks} checks ok")
    return 1 if failures else 0


def main(argv) -> int:
    if len(argv) == 4 and argv[1] == "wait":
        return wait(argv[2], float(argv[3]))
    if len(argv) == 2 and argv[1] == "setup":
        return setup()
    if len(argv) == 2 and argv[1] == "verify":
        return verify()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
