"""``pkiwarden lint``: the admission checks offline, for CI before ``kubectl apply``.

Reads multi-document YAML, validates every Pki and PkiPolicy with the same
module the webhook uses, and prints one line per finding. Namespaces, Pkis and
Secrets in the same files inform the checks (namespace labels for selectors,
secretName clashes, unmanaged Secrets) as the cluster would.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import yaml

from shared import API_GROUP, MANAGED_BY_LABEL, MANAGED_BY_VALUE, PKI_LABEL
from shared.findings import Finding, phrase
from shared.validation import Context, SecretInfo, validate_pki, validate_policy

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_UNREADABLE = 2
STDIN = "-"
DEFAULT_NAMESPACE = "default"


class InputError(Exception):
    """A file that cannot be read or parsed; the message names the file and line."""


@dataclass(frozen=True)
class Document:
    source: str
    body: Mapping[str, Any]

    @property
    def kind(self) -> str:
        kind = self.body.get("kind")
        return kind if isinstance(kind, str) else ""

    @property
    def is_ours(self) -> bool:
        api_version = self.body.get("apiVersion")
        return isinstance(api_version, str) and api_version.split("/")[0] == API_GROUP

    @property
    def metadata(self) -> Mapping[str, Any]:
        metadata = self.body.get("metadata")
        return metadata if isinstance(metadata, Mapping) else {}

    @property
    def name(self) -> str:
        name = self.metadata.get("name")
        return name if isinstance(name, str) else "<unnamed>"

    def namespace(self, fallback: str) -> str:
        namespace = self.metadata.get("namespace")
        return namespace if isinstance(namespace, str) and namespace else fallback


@dataclass
class Inputs:
    """Everything read, grouped the way validation needs it."""

    pkis: list[Document] = field(default_factory=list)
    policies: list[Document] = field(default_factory=list)
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    secrets: dict[str, dict[str, SecretInfo]] = field(default_factory=dict)


def load_documents(source: str, stream: TextIO) -> list[Document]:
    """The mapping documents of one YAML stream; :class:`InputError` if it does not parse."""
    try:
        bodies = list(yaml.safe_load_all(stream))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = error.problem or error.context or "malformed YAML"
        raise InputError(f"{where}: malformed YAML: {problem}") from None
    except yaml.YAMLError as error:
        raise InputError(f"{source}: malformed YAML: {error}") from None
    return [Document(source, body) for body in bodies if isinstance(body, Mapping)]


def read_file(path: str, stdin: TextIO) -> list[Document]:
    if path == STDIN:
        return load_documents("<stdin>", stdin)
    try:
        with open(path, encoding="utf-8") as stream:
            return load_documents(path, stream)
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise InputError(f"{path}: cannot read: {reason}") from None


def _secret_info(document: Document) -> SecretInfo:
    labels = document.metadata.get("labels")
    labels = labels if isinstance(labels, Mapping) else {}
    owner = labels.get(PKI_LABEL)
    return SecretInfo(
        name=document.name,
        managed_by_pkiwarden=labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE,
        owner_pki=owner if isinstance(owner, str) else None,
    )


def collect(documents: Iterable[Document], default_namespace: str) -> Inputs:
    inputs = Inputs()
    for document in documents:
        if document.is_ours and document.kind == "Pki":
            inputs.pkis.append(document)
        elif document.is_ours and document.kind == "PkiPolicy":
            inputs.policies.append(document)
        elif document.body.get("apiVersion") == "v1" and document.kind == "Namespace":
            labels = document.metadata.get("labels")
            inputs.namespace_labels[document.name] = {
                str(k): str(v) for k, v in (labels.items() if isinstance(labels, Mapping) else ())
            }
        elif document.body.get("apiVersion") == "v1" and document.kind == "Secret":
            namespace = document.namespace(default_namespace)
            inputs.secrets.setdefault(namespace, {})[document.name] = _secret_info(document)
    return inputs


def _line(document: Document, namespace: str | None, finding: Finding) -> str:
    where = (
        f"{document.kind}/{namespace}/{document.name}"
        if namespace
        else f"{document.kind}/{document.name}"
    )
    return f"{document.source}: {where}: {finding.severity.value}: {phrase(finding)}"


def lint(inputs: Inputs, default_namespace: str) -> list[tuple[bool, str]]:
    """(is_error, line) for every finding, policies first, then Pkis, in input order."""
    results: list[tuple[bool, str]] = []
    for document in inputs.policies:
        results += [(f.is_error, _line(document, None, f)) for f in validate_policy(document.body)]
    policies = [document.body for document in inputs.policies]
    for document in inputs.pkis:
        namespace = document.namespace(default_namespace)
        context = Context(
            policies=policies,
            namespace_labels=inputs.namespace_labels.get(namespace),
            other_pkis=[
                other.body
                for other in inputs.pkis
                if other is not document and other.namespace(default_namespace) == namespace
            ],
            secrets=inputs.secrets.get(namespace),
        )
        findings = validate_pki(document.body, namespace, context)
        results += [(f.is_error, _line(document, namespace, f)) for f in findings]
    return results


def run(
    args: argparse.Namespace,
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """The ``lint`` command; returns the exit code (0 clean, 1 errors, 2 unreadable input)."""
    default_namespace: str = args.namespace or DEFAULT_NAMESPACE
    documents: list[Document] = []
    unreadable = False
    for path in [*args.policy, *args.files]:
        try:
            documents += read_file(path, stdin)
        except InputError as error:
            print(error, file=err)
            unreadable = True
    policy_files = set(args.policy) - set(args.files)
    documents = [d for d in documents if d.source not in policy_files or d.kind == "PkiPolicy"]
    results = lint(collect(documents, default_namespace), default_namespace)
    for _, line in results:
        print(line, file=out)
    if unreadable:
        return EXIT_UNREADABLE
    return EXIT_FINDINGS if any(is_error for is_error, _ in results) else EXIT_OK


def _handle(args: argparse.Namespace) -> int:
    return run(args)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "lint",
        help="check Pki and PkiPolicy manifests offline",
        description=(
            "Validate Pki and PkiPolicy documents as the admission webhook would. "
            "Prints FILE: Kind/namespace/name: error|warning: PATH: MESSAGE per finding. "
            "Exit 0: no errors, 1: errors, 2: unreadable input."
        ),
    )
    parser.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar="FILE",
        help="PkiPolicy manifests to check against (PkiPolicies in FILE count too)",
    )
    parser.add_argument(
        "--namespace",
        metavar="NS",
        help=f"namespace for documents without metadata.namespace (default: {DEFAULT_NAMESPACE})",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help=f"manifests; {STDIN} reads stdin")
    parser.set_defaults(handler=_handle)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lint`` alone, without the other command groups."""
    parser = argparse.ArgumentParser(prog="pkiwarden")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["lint", *(sys.argv[1:] if argv is None else argv)])
    return _handle(args)


if __name__ == "__main__":
    sys.exit(main())
