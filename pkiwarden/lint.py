"""``pkiwarden lint``: the admission checks offline, for CI before ``kubectl apply``.

Reads multi-document YAML (files, directories, stdin), validates every Pki,
PkiPolicy and PkiAuthority with the same modules the webhook uses, and prints one line per
finding with the document's line. Namespaces, Pkis and Secrets in the same
input inform the checks (namespace labels for selectors, secretName clashes,
unmanaged Secrets) as the cluster would. Where lint and ``kubectl apply`` could
disagree, lint does what apply does: an object defined twice is the last
definition, and a document apply would refuse is an error here too.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from shared import API_GROUP, API_GROUP_VERSION, MANAGED_BY_LABEL, MANAGED_BY_VALUE, PKI_LABEL
from shared.findings import Category, Finding, Severity, errors, phrase
from shared.impact import unknown_authorities
from shared.suggest import did_you_mean
from shared.validation.pki import Context, SecretInfo, validate_pki
from shared.validation.pki_authority import validate_authority
from shared.validation.pki_policy import validate_policy

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_UNREADABLE = 2
STDIN = "-"
DEFAULT_NAMESPACE = "default"
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")  # what `kubectl apply -f DIR` reads
CHECKED_KINDS = ("Pki", "PkiPolicy", "PkiAuthority")
_CONTEXT_KINDS = ("PkiPolicy", "PkiAuthority")  # what --policy files contribute
_SKIPPED_SHOWN = 5


class InputError(Exception):
    """A file that cannot be read or parsed; the message names the file and line."""


@dataclass(frozen=True)
class Document:
    source: str
    line: int  # 1-based line where the document (or List item) starts
    body: Any

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"

    @property
    def mapping(self) -> Mapping[str, Any]:
        return self.body if isinstance(self.body, Mapping) else {}

    @property
    def kind(self) -> str:
        kind = self.mapping.get("kind")
        return kind if isinstance(kind, str) else ""

    @property
    def api_version(self) -> str:
        api_version = self.mapping.get("apiVersion")
        return api_version if isinstance(api_version, str) else ""

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def is_ours(self) -> bool:
        return self.group == API_GROUP

    @property
    def metadata(self) -> Mapping[str, Any]:
        metadata = self.mapping.get("metadata")
        return metadata if isinstance(metadata, Mapping) else {}

    @property
    def has_name(self) -> bool:
        name = self.metadata.get("name")
        return isinstance(name, str) and bool(name)

    @property
    def name(self) -> str:
        return str(self.metadata["name"]) if self.has_name else "<unnamed>"

    def namespace(self, fallback: str) -> str:
        namespace = self.metadata.get("namespace")
        return namespace if isinstance(namespace, str) and namespace else fallback


@dataclass
class Inputs:
    """Everything read, grouped the way validation needs it; later definitions win."""

    pkis: dict[tuple[str, str], Document] = field(default_factory=dict)
    policies: dict[str, Document] = field(default_factory=dict)
    authorities: dict[str, Document] = field(default_factory=dict)
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    secrets: dict[str, dict[str, SecretInfo]] = field(default_factory=dict)
    # (document, finding) about the document itself: refused kinds, replaced duplicates
    findings: list[tuple[Document, Finding]] = field(default_factory=list)
    skipped: list[Document] = field(default_factory=list)


# --- reading ---------------------------------------------------------------------------


def _list_item_lines(node: yaml.Node) -> list[int]:
    """Start lines of the ``items`` of a ``kind: List`` document node."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            is_items = isinstance(key, yaml.ScalarNode) and key.value == "items"
            if is_items and isinstance(value, yaml.SequenceNode):
                return [item.start_mark.line + 1 for item in value.value]
    return []


def _documents_of(source: str, line: int, body: Any, node: yaml.Node) -> Iterator[Document]:
    """One document, or the items of a ``v1`` ``List`` (kubectl applies each)."""
    if (
        isinstance(body, Mapping)
        and body.get("apiVersion") == "v1"
        and body.get("kind") == "List"
        and isinstance(body.get("items"), list)
    ):
        lines = _list_item_lines(node)
        for index, item in enumerate(body["items"]):
            yield Document(source, lines[index] if index < len(lines) else line, item)
        return
    yield Document(source, line, body)


def load_documents(source: str, stream: TextIO) -> list[Document]:
    """The documents of one YAML stream with their lines; :class:`InputError` if it does
    not parse. Empty documents (a stray ``---``) are dropped, as kubectl drops them."""
    loader = yaml.SafeLoader(stream)
    documents: list[Document] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            body = loader.construct_document(node)
            if body is not None:
                documents += _documents_of(source, node.start_mark.line + 1, body, node)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = error.problem or error.context or "malformed YAML"
        raise InputError(f"{where}: malformed YAML: {problem}") from None
    except yaml.YAMLError as error:
        raise InputError(f"{source}: malformed YAML: {error}") from None
    finally:
        loader.dispose()
    return documents


def manifest_files(path: str) -> list[str]:
    """``path`` itself, or a directory's manifest files in name order (not recursive),
    as ``kubectl apply -f DIR`` reads them."""
    directory = Path(path)
    if path == STDIN or not directory.is_dir():
        return [path]
    files = sorted(
        str(child)
        for child in directory.iterdir()
        if child.suffix in MANIFEST_SUFFIXES and child.is_file()
    )
    if not files:
        suffixes = ", ".join(MANIFEST_SUFFIXES)
        raise InputError(f"{path}: cannot read: no manifest files ({suffixes}) in the directory")
    return files


def read_file(path: str, stdin: TextIO) -> list[Document]:
    if path == STDIN:
        return load_documents("<stdin>", stdin)
    try:
        with open(path, encoding="utf-8") as stream:
            return load_documents(path, stream)
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise InputError(f"{path}: cannot read: {reason}") from None


def read_inputs(paths: Iterable[str], stdin: TextIO) -> tuple[list[Document], list[str]]:
    """Every document of ``paths`` (each file once), and the errors of what was unreadable."""
    documents: list[Document] = []
    problems: list[str] = []
    seen: set[str] = set()
    for path in paths:
        try:
            files = manifest_files(path)
        except InputError as error:
            problems.append(str(error))
            continue
        for name in files:
            if name in seen:
                continue
            seen.add(name)
            try:
                documents += read_file(name, stdin)
            except InputError as error:
                problems.append(str(error))
    return documents, problems


# --- sorting the documents -------------------------------------------------------------


def _secret_info(document: Document) -> SecretInfo:
    labels = document.metadata.get("labels")
    labels = labels if isinstance(labels, Mapping) else {}
    owner = labels.get(PKI_LABEL)
    return SecretInfo(
        name=document.name,
        managed_by_pkiwarden=labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE,
        owner_pki=owner if isinstance(owner, str) else None,
    )


def _error(path: str, problem: str, value: object = None) -> Finding:
    return Finding(Severity.ERROR, Category.INVALID_SPEC, path, problem, value)


def _refusal(document: Document) -> Finding | None:
    """Why ``kubectl apply`` would refuse a document meant for pkiwarden, or None."""
    if not isinstance(document.body, Mapping):
        shape = "a list" if isinstance(document.body, list) else "a single value"
        return _error(
            "document",
            f"is {shape}, not an object; each YAML document must be one object with "
            "apiVersion, kind, metadata and spec (separate documents with ---)",
        )
    kind = document.kind
    near = did_you_mean(kind, CHECKED_KINDS)
    if document.is_ours and kind not in CHECKED_KINDS:
        allowed = ", ".join(CHECKED_KINDS)
        return _error("kind", f"is not a kind of {API_GROUP} (allowed: {allowed}){near}", kind)
    if not document.is_ours and (kind in CHECKED_KINDS or (near and "pkiwarden" in document.group)):
        return _error(
            "apiVersion",
            f'is not pkiwarden\'s API group; use "{API_GROUP_VERSION}"',
            document.api_version,
        )
    if document.is_ours and not document.has_name:
        return _error("metadata.name", "is required; kubectl apply refuses an object without it")
    return None


def _redefined(earlier: Document, later: Document) -> Finding:
    return Finding(
        Severity.WARNING,
        Category.ADVICE,
        "metadata.name",
        f"is defined again at {later.where}; kubectl apply keeps that last definition, "
        "so lint checks only that one",
        earlier.name,
    )


def _keep_last(table: dict[Any, Document], key: object, document: Document, inputs: Inputs) -> None:
    earlier = table.pop(key, None)
    if earlier is not None and earlier.body != document.body:
        inputs.findings.append((earlier, _redefined(earlier, document)))
    table[key] = document


def collect(documents: Iterable[Document], default_namespace: str) -> Inputs:
    inputs = Inputs()
    for document in documents:
        refusal = _refusal(document)
        if refusal is not None:
            inputs.findings.append((document, refusal))
        elif document.is_ours and document.kind == "Pki":
            key = (document.namespace(default_namespace), document.name)
            _keep_last(inputs.pkis, key, document, inputs)
        elif document.is_ours and document.kind == "PkiPolicy":
            _keep_last(inputs.policies, document.name, document, inputs)
        elif document.is_ours and document.kind == "PkiAuthority":
            _keep_last(inputs.authorities, document.name, document, inputs)
        elif document.api_version == "v1" and document.kind == "Namespace":
            labels = document.metadata.get("labels")
            inputs.namespace_labels[document.name] = {
                str(k): str(v) for k, v in (labels.items() if isinstance(labels, Mapping) else ())
            }
        elif document.api_version == "v1" and document.kind == "Secret":
            namespace = document.namespace(default_namespace)
            inputs.secrets.setdefault(namespace, {})[document.name] = _secret_info(document)
        else:
            inputs.skipped.append(document)
    return inputs


# --- checking and printing -------------------------------------------------------------


def _line(document: Document, namespace: str | None, finding: Finding) -> str:
    kind = document.kind or "document"
    where = f"{kind}/{namespace}/{document.name}" if namespace else f"{kind}/{document.name}"
    return f"{document.where}: {where}: {finding.severity.value}: {phrase(finding)}"


def _labels_hint(namespace: str) -> str:
    return (
        f"; give lint the Namespace with its labels (kubectl get namespace {namespace} "
        "-o yaml > namespace.yaml, then add namespace.yaml to the files)"
    )


def lint(inputs: Inputs, default_namespace: str) -> list[tuple[bool, str]]:
    """(is_error, line) for every finding: the documents' own, then authorities, policies,
    Pkis."""
    results: list[tuple[bool, str]] = []
    for document, finding in inputs.findings:
        namespace = document.namespace(default_namespace) if document.kind == "Pki" else None
        results.append((finding.is_error, _line(document, namespace, finding)))
    for document in inputs.authorities.values():
        findings = validate_authority(document.body)
        results += [(f.is_error, _line(document, None, f)) for f in findings]
    # The PkiAuthorities given are taken as all there are; given none, lint cannot know
    # which exist and checks only the policies' allowedAuthorities.
    authorities = frozenset(inputs.authorities) or None
    for document in inputs.policies.values():
        findings = validate_policy(document.body)
        if not errors(findings) and isinstance(document.body, Mapping):
            findings += unknown_authorities(document.body, authorities)
        results += [(f.is_error, _line(document, None, f)) for f in findings]
    policies = [document.body for document in inputs.policies.values()]
    for (namespace, _), document in inputs.pkis.items():
        context = Context(
            policies=policies,
            namespace_labels=inputs.namespace_labels.get(namespace),
            other_pkis=[
                other.body
                for (other_namespace, _), other in inputs.pkis.items()
                if other is not document and other_namespace == namespace
            ],
            secrets=inputs.secrets.get(namespace),
            unknown_labels_hint=_labels_hint(namespace),
            authorities=authorities,
        )
        findings = validate_pki(document.body, namespace, context)
        results += [(f.is_error, _line(document, namespace, f)) for f in findings]
    return results


def _kinds(conjunction: str) -> str:
    """The checked kinds as a phrase: "Pki, PkiPolicy or PkiAuthority"."""
    return f"{', '.join(CHECKED_KINDS[:-1])} {conjunction} {CHECKED_KINDS[-1]}"


def skipped_note(skipped: Sequence[Document]) -> str | None:
    """One line naming the documents lint did not check, or None."""
    if not skipped:
        return None
    shown = ", ".join(
        f"{d.where} {d.kind or 'document'}/{d.name}" for d in skipped[:_SKIPPED_SHOWN]
    )
    more = len(skipped) - _SKIPPED_SHOWN
    listing = f"{shown} and {more} more" if more > 0 else shown
    return (
        f"note: skipped {len(skipped)} document(s) that are not {_kinds('or')} "
        f"(Namespaces and Secrets are read for context): {listing}"
    )


def run(
    args: argparse.Namespace,
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """The ``lint`` command; returns the exit code (0 clean, 1 errors, 2 unreadable input).

    Unreadable input stops lint before any finding is printed: a CI log then
    shows the one thing to fix, not findings computed without a policy.
    """
    default_namespace: str = args.namespace or DEFAULT_NAMESPACE
    policy_documents, problems = read_inputs(args.policy, stdin)
    file_documents, file_problems = read_inputs(args.files, stdin)
    problems += file_problems
    if problems:
        for problem in problems:
            print(problem, file=err)
        return EXIT_UNREADABLE
    # A policy file contributes its PkiPolicies and PkiAuthorities only (unless it is also
    # given as FILE): what the cluster has that the Pkis are judged by.
    linted = {document.source for document in file_documents}
    documents = [
        *(d for d in policy_documents if d.source not in linted and d.kind in _CONTEXT_KINDS),
        *file_documents,
    ]
    inputs = collect(documents, default_namespace)
    results = lint(inputs, default_namespace)
    for _, line in results:
        print(line, file=out)
    note = skipped_note(inputs.skipped)
    if note:
        print(note, file=err)
    return EXIT_FINDINGS if any(is_error for is_error, _ in results) else EXIT_OK


def _handle(args: argparse.Namespace) -> int:
    return run(args)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "lint",
        help=f"check {_kinds('and')} manifests offline",
        description=(
            f"Validate {_kinds('and')} documents as the admission webhook would. "
            "Prints FILE:LINE: Kind/namespace/name: error|warning: PATH: MESSAGE per finding. "
            "Exit 0: no errors, 1: errors, 2: unreadable input (nothing else is printed then)."
        ),
    )
    parser.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar="FILE",
        help="PkiPolicy and PkiAuthority manifests (file or directory) to check against; "
        "those among the FILEs count too (given PkiAuthorities, a Pki naming another is an "
        "error)",
    )
    parser.add_argument(
        "--namespace",
        metavar="NS",
        help=f"namespace for documents without metadata.namespace (default: {DEFAULT_NAMESPACE})",
    )
    parser.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help=f"manifest files or directories (their .yaml, .yml and .json files, as kubectl "
        f"apply -f DIR); {STDIN} reads stdin",
    )
    parser.set_defaults(handler=_handle)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lint`` alone, without the other command groups."""
    parser = argparse.ArgumentParser(prog="pkiwarden")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["lint", *(sys.argv[1:] if argv is None else argv)])
    return _handle(args)


if __name__ == "__main__":
    sys.exit(main())
