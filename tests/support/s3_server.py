"""A real S3-compatible server on loopback for the S3 tests: moto's server.

With `--check-signatures`, every request must be signed by the key of an IAM user that the
server makes first. moto recomputes signatures from its own re-encoding of the URL, which
differs from the AWS SDKs' for keys with spaces or `=` and for some query strings, so only
the tests about credentials use that mode.

`--bucket NAME` makes a bucket first. Prints one JSON line (endpoint, access key id, secret
access key) once it is ready, then
serves until its standard input closes, which happens when the test process ends.
"""

import json
import os
import sys

if "--check-signatures" in sys.argv:
    # The first three requests (making the user, its policy and its key) are let through;
    # every request after them must be signed by a known key and allowed by its policy.
    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

import boto3  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
endpoint = f"http://{host}:{port}"

iam = boto3.client(
    "iam",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id="setup",
    aws_secret_access_key="setup",
)
iam.create_user(UserName="tributary-tests")
iam.put_user_policy(
    UserName="tributary-tests",
    PolicyName="everything",
    PolicyDocument=json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        }
    ),
)
key = iam.create_access_key(UserName="tributary-tests")["AccessKey"]

# `--bucket NAME` (repeatable) makes buckets before the server says it is ready.
for i, arg in enumerate(sys.argv):
    if arg == "--bucket":
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
        ).create_bucket(Bucket=sys.argv[i + 1])

print(
    json.dumps(
        {
            "endpoint": endpoint,
            "access_key_id": key["AccessKeyId"],
            "secret_access_key": key["SecretAccessKey"],
        }
    ),
    flush=True,
)
sys.stdin.read()
server.stop()
