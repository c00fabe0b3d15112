"""``pkiwarden webhook serve|certs``: arguments in, one :class:`WebhookSettings` out.

Failures print one line saying what to fix and exit 1; a traceback is not a
message anyone can act on.
"""

from __future__ import annotations

import argparse
import logging
import ssl
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import urllib3

from shared import logs
from shared.clock import utc_now
from shared.kube.client import ApiError, Kube
from webhook.cert_store import ensure_certificates, write_files
from webhook.settings import CertificateSettings, WebhookSettings
from webhook.tls import describe_pem

_DEFAULTS = WebhookSettings()
_CERT_DEFAULTS = CertificateSettings()


def register(subparsers: Any) -> None:
    """Add the ``webhook`` command group to the pkiwarden CLI."""
    group = subparsers.add_parser(
        "webhook",
        help="the validating admission webhook for Pkis and PkiPolicies",
        description="Rejects bad Pkis and PkiPolicies at apply time, with the fix in the message.",
    )
    actions = group.add_subparsers(dest="webhook_command", required=True, metavar="ACTION")

    serve = actions.add_parser(
        "serve",
        help="serve AdmissionReviews over HTTPS",
        description="Serve POST /validate, /healthz, /readyz and /metrics over TLS 1.2+.",
    )
    serve.add_argument("--host", default=_DEFAULTS.host, help="address to listen on (%(default)s)")
    serve.add_argument("--port", type=int, default=_DEFAULTS.port, help="port (%(default)s)")
    serve.add_argument(
        "--no-manage-certs",
        dest="manage_certs",
        action="store_false",
        help="serve the files in --cert-dir as they are (e.g. a mounted Secret) instead of"
        " creating, rotating and writing them",
    )
    serve.add_argument(
        "--no-metrics-auth",
        dest="metrics_auth",
        action="store_false",
        help="answer /metrics without checking the bearer token (local development only);"
        " by default only tokens allowed to get /metrics (ClusterRole"
        " pkiwarden-metrics-reader) are answered",
    )
    serve.add_argument(
        "--workers",
        type=_positive,
        default=_DEFAULTS.workers,
        help="processes serving the port, each with its own caches (%(default)s);"
        " one per core the replica may use",
    )
    serve.add_argument(
        "--max-queued-reviews",
        type=_positive,
        default=_DEFAULTS.max_queued_reviews,
        help="reviews a process may have waiting before it refuses more with"
        " 429 and a retry hint (%(default)s)",
    )
    serve.add_argument(
        "--max-connections",
        type=_positive,
        default=_DEFAULTS.max_connections,
        help="connections a process keeps open; past it each is answered with 429"
        " and closed (%(default)s)",
    )
    _common(serve)
    serve.set_defaults(handler=run_serve)

    certs = actions.add_parser(
        "certs",
        help="create or rotate the webhook's serving certificate and caBundle",
        description="Create the webhook CA and serving certificate in their Secret if missing,"
        " rotate at 2/3 of their life, and patch the caBundle into the"
        " ValidatingWebhookConfiguration.",
    )
    certs.add_argument("--rotate", action="store_true", help="issue a new serving certificate now")
    certs.add_argument(
        "--write-files",
        action="store_true",
        help="also write tls.crt and tls.key into --cert-dir",
    )
    _common(certs)
    certs.set_defaults(handler=run_certs)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cert-dir",
        type=Path,
        default=_DEFAULTS.cert_dir,
        help="directory of tls.crt and tls.key (%(default)s)",
    )
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, in-cluster)")
    parser.add_argument(
        "--namespace",
        default=_CERT_DEFAULTS.namespace,
        help="namespace of the webhook and its TLS Secret (%(default)s)",
    )
    parser.add_argument(
        "--service-name",
        default=_CERT_DEFAULTS.service_name,
        help="Service in front of the webhook (%(default)s)",
    )
    parser.add_argument(
        "--secret-name",
        default=_CERT_DEFAULTS.secret_name,
        help="Secret holding the webhook CA and serving certificate (%(default)s)",
    )
    parser.add_argument(
        "--webhook-configuration",
        default=_CERT_DEFAULTS.webhook_configuration,
        help="ValidatingWebhookConfiguration whose caBundle to keep current (%(default)s)",
    )
    parser.add_argument(
        "--local",
        action="store_true",
        help="the API server calls https://127.0.0.1: add that IP to the certificate",
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def settings_from(args: argparse.Namespace) -> WebhookSettings:
    certs = replace(
        _CERT_DEFAULTS,
        namespace=args.namespace,
        service_name=args.service_name,
        secret_name=args.secret_name,
        webhook_configuration=args.webhook_configuration,
        local=args.local,
    )
    settings = replace(_DEFAULTS, cert_dir=args.cert_dir, kubeconfig=args.kubeconfig, certs=certs)
    if hasattr(args, "port"):
        settings = replace(
            settings,
            host=args.host,
            port=args.port,
            manage_certs=args.manage_certs,
            metrics_auth=args.metrics_auth,
            workers=args.workers,
            max_queued_reviews=args.max_queued_reviews,
            max_connections=args.max_connections,
        )
    return settings


def _fail(command: str, error: BaseException) -> int:
    detail = error.message if isinstance(error, ApiError) else str(error)
    reason = f"{type(error).__name__}: {detail}" if detail else type(error).__name__
    print(f"pkiwarden webhook {command}: {reason}", file=sys.stderr)
    return 1


_EXPECTED = (
    ApiError,
    OSError,
    ssl.SSLError,
    urllib3.exceptions.HTTPError,
    RuntimeError,
    ValueError,
)


def run_serve(args: argparse.Namespace) -> int:
    """Handler of ``pkiwarden webhook serve``."""
    from webhook.run import serve  # noqa: PLC0415 - keeps `--help` fast

    logs.configure(adopt=("uvicorn", "uvicorn.error", "uvicorn.access"))
    try:
        return serve(settings_from(args))
    except _EXPECTED as error:
        logging.getLogger("pkiwarden.webhook").error("cannot serve: %s", type(error).__name__)
        return _fail("serve", error)


def run_certs(args: argparse.Namespace) -> int:
    """Handler of ``pkiwarden webhook certs``."""
    settings = settings_from(args)
    try:
        kube = Kube.from_environment(settings.kubeconfig)
        material = ensure_certificates(kube, settings.certs, utc_now(), force_rotate=args.rotate)
        if args.write_files:
            write_files(material, settings.cert_file, settings.key_file)
    except _EXPECTED as error:
        return _fail("certs", error)
    print(
        f"webhook certificate ready in Secret {settings.certs.namespace}/"
        f"{settings.certs.secret_name} ({describe_pem(material.tls_cert)})"
    )
    return 0
