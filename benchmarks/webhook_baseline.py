"""The naive admission webhook pkiwarden's is measured against (``make bench-webhook``).

The simplest webhook anyone would write with the same stack: one FastAPI
route, one compiled JSON Schema validator, a hard-coded allow-list of service
names, uvicorn over TLS, one process. It checks far less than pkiwarden (no
policies, no names, no durations, no cluster state, no metrics, no logs); it is
the floor a Python webhook starts from, not a competitor.

    python benchmarks/webhook_baseline.py --port 9443 --cert tls.crt --key tls.key
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from jsonschema import Draft202012Validator

ALLOWED_SERVICES = frozenset({"app1", "app2", "app3"})
PKI_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["spec"],
    "properties": {
        "spec": {
            "type": "object",
            "required": ["serviceName"],
            "properties": {
                "serviceName": {"type": "string", "maxLength": 63},
                "secretName": {"type": "string", "maxLength": 253},
                "dnsNames": {"type": "array", "items": {"type": "string"}, "maxItems": 100},
                "duration": {"type": "string"},
                "renewBefore": {"type": "string"},
            },
        }
    },
}
VALIDATOR = Draft202012Validator(PKI_SCHEMA)

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@app.post("/validate")
async def validate(request: Request) -> dict[str, Any]:
    review = await request.json()
    uid = review["request"]["uid"]
    obj = review["request"].get("object") or {}
    problems = [error.message for error in VALIDATOR.iter_errors(obj)]
    service = (obj.get("spec") or {}).get("serviceName")
    if not problems and service not in ALLOWED_SERVICES:
        problems.append(f"serviceName {service!r} is not allowed")
    response: dict[str, Any] = {"uid": uid, "allowed": not problems}
    if problems:
        response["status"] = {"code": 403, "message": "; ".join(problems)}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        ssl_certfile=args.cert,
        ssl_keyfile=args.key,
        log_level="warning",
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
