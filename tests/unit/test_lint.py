"""``pkiwarden lint``: output format, exit codes, stdin, YAML errors."""

import argparse
import io
from pathlib import Path

import pytest

from pkiwarden.lint import main, register, run

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"
POLICY = """\
apiVersion: pkiwarden.dev/v1alpha1
kind: PkiPolicy
metadata: {name: app-teams}
spec: {namespaces: [app1, app2], allowedServiceNames: [app1, app2]}
"""
GOOD = """\
apiVersion: pkiwarden.dev/v1alpha1
kind: Pki
metadata: {name: app1-pki, namespace: app1}
spec: {serviceName: app1}
"""


def lint(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["lint", *argv])
    out, err = io.StringIO(), io.StringIO()
    code = run(args, stdin=io.StringIO(stdin), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_examples_report_the_typo() -> None:
    files = sorted(str(p) for p in EXAMPLES.glob("*.yaml"))
    code, out, err = lint(*files)
    assert code == 1
    assert out.splitlines() == [
        f"{EXAMPLES / 'app1.yaml'}:8: Pki/app1/app1-pki: error: spec.serviceName: "
        '"appp1" is not allowed in namespace "app1" (allowed by PkiPolicy "app-teams": '
        'app1, app2); did you mean "app1"?'
    ]
    assert err == (
        "note: skipped 2 document(s) that are not Pki, PkiPolicy or PkiAuthority (Namespaces and "
        f"Secrets are read for context): {EXAMPLES / 'app2.yaml'}:16 Service/app2, "
        f"{EXAMPLES / 'app2.yaml'}:29 Deployment/app2\n"
    )


def test_a_usage_the_policy_does_not_grant_is_an_error(tmp_path: Path) -> None:
    signing = GOOD.replace("{serviceName: app1}", "{serviceName: app1, usages: [code signing]}")
    code, out, _ = lint(
        write(tmp_path, "policy.yaml", POLICY), write(tmp_path, "pki.yaml", signing)
    )
    assert code == 1
    assert (
        'error: spec.usages[0]: "code signing" is not allowed by PkiPolicy "app-teams"'
        ' (allowed: "server auth", "client auth", "digital signature", "key encipherment",'
        ' "key agreement"); remove it from spec.usages'
    ) in out


def test_corrected_file_is_clean(tmp_path: Path) -> None:
    fixed = (EXAMPLES / "app1.yaml").read_text().replace("serviceName: appp1", "serviceName: app1")
    code, out, _ = lint(str(EXAMPLES / "policy.yaml"), write(tmp_path, "app1.yaml", fixed))
    assert (code, out) == (0, "")


def test_policy_flag_and_stdin() -> None:
    code, out, _ = lint("--policy", str(EXAMPLES / "policy.yaml"), "-", stdin=GOOD)
    assert (code, out) == (0, "")


def test_without_policy_namespace_is_not_selected() -> None:
    code, out, _ = lint("-", stdin=GOOD)
    assert code == 1
    assert out.startswith("<stdin>:1: Pki/app1/app1-pki: error: metadata.namespace: ")


def test_namespace_flag_applies_to_documents_without_one() -> None:
    body = GOOD.replace(", namespace: app1", "")
    assert lint("--namespace", "app1", "-", stdin=POLICY + "---\n" + body)[0] == 0
    code, out, _ = lint("-", stdin=POLICY + "---\n" + body)
    assert code == 1
    assert "Pki/default/app1-pki" in out


def test_warnings_alone_exit_zero() -> None:
    body = GOOD.replace("{serviceName: app1}", "{serviceName: app1, commonName: other.example}")
    policy = POLICY.replace(
        "allowedServiceNames",
        "allowedDNSNames: ['*.example', '{serviceName}.{namespace}.svc', "
        "'{serviceName}.{namespace}.svc.cluster.local'], allowedServiceNames",
    )
    code, out, _ = lint("-", stdin=policy + "---\n" + body)
    assert code == 0
    assert out == (
        '<stdin>:6: Pki/app1/app1-pki: warning: spec.commonName: "other.example" '
        "is not among spec.dnsNames; it will be added to them\n"
    )


def test_policy_findings_and_other_kinds() -> None:
    stream = (
        POLICY.replace("[app1, app2]}", "[app1, 1app]}")
        + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n"
    )
    code, out, err = lint("-", stdin=stream)
    assert code == 1
    assert out.startswith(
        '<stdin>:1: PkiPolicy/app-teams: error: spec.allowedServiceNames[1]: "1app" must start'
    )
    assert err == (
        "note: skipped 1 document(s) that are not Pki, PkiPolicy or PkiAuthority (Namespaces and "
        "Secrets are read for context): <stdin>:6 ConfigMap/x\n"
    )


AUTHORITY = """\
apiVersion: pkiwarden.dev/v1alpha1
kind: PkiAuthority
metadata: {name: default}
spec:
  secretName: pkiwarden-ca
  generate: {duration: 87600h}
  rotation: {trustPropagation: 1h, reissueRate: 10}
"""


def test_authorities_are_validated_as_the_webhook_does() -> None:
    assert lint("-", stdin=AUTHORITY) == (0, "", "")
    too_late = AUTHORITY.replace("{duration: 87600h}", "{duration: 87600h, renewBefore: 90000h}")
    code, out, err = lint("-", stdin=POLICY + "---\n" + too_late)
    assert code == 1
    assert out == (
        "<stdin>:6: PkiAuthority/default: error: spec.generate.renewBefore: "
        '"90000h" must be shorter than spec.generate.duration (87600h); try "29200h"\n'
    )
    assert err == ""


def test_secrets_and_pkis_in_the_files_count(tmp_path: Path) -> None:
    secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: app1-pki-tls, namespace: app1}\n"
    other = GOOD.replace("app1-pki,", "second,").replace(
        "{serviceName: app1}", "{serviceName: app1, secretName: app1-pki-tls}"
    )
    code, out, _ = lint("-", stdin="---\n".join([POLICY, GOOD, secret]))
    assert code == 0
    assert 'warning: spec.secretName: "app1-pki-tls" exists and is not managed by pkiwarden' in out
    code, out, _ = lint("-", stdin="---\n".join([POLICY, GOOD, other]))
    assert code == 1
    assert 'is already the Secret of Pki "second"' in out


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("kind: Pki\nspec: [unclosed\n", ":3:1: malformed YAML"),
        ("a: b\n  c: d\n", ":2:4: malformed YAML"),
        ("key: 'open\n", "malformed YAML"),
    ],
)
def test_malformed_yaml_names_file_and_line(tmp_path: Path, text: str, where: str) -> None:
    path = write(tmp_path, "bad.yaml", text)
    code, _, err = lint(path, str(EXAMPLES / "policy.yaml"))
    assert code == 2
    assert err.startswith(path + where) or (where in err and err.startswith(path))
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1


def test_missing_file_exits_2(tmp_path: Path) -> None:
    code, _, err = lint(str(tmp_path / "nope.yaml"))
    assert code == 2
    assert err == f"{tmp_path / 'nope.yaml'}: cannot read: No such file or directory\n"


def test_binary_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"\xff\xfe\x00")
    code, _, err = lint(str(path))
    assert code == 2
    assert err.startswith(f"{path}: cannot read:")


def test_main_runs_lint_alone(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(EXAMPLES / "policy.yaml"), str(EXAMPLES / "app2.yaml")]) == 0
    assert capsys.readouterr().out == ""


def test_the_same_policy_twice_is_one_policy_and_the_last_definition_wins() -> None:
    """kubectl apply keeps the last of two objects with one name; so does lint."""
    other = POLICY.replace("namespaces: [app1, app2]", "namespaces: [app3]")
    pki = GOOD.replace("{serviceName: app1}", "{serviceName: appp1}")
    code, out, _ = lint("-", stdin="---\n".join([POLICY, POLICY, pki]))
    assert code == 1
    assert out.count('PkiPolicy "app-teams"') == 1, out
    code, out, _ = lint("-", stdin="---\n".join([POLICY, other, pki]))
    assert out.splitlines() == [
        '<stdin>:1: PkiPolicy/app-teams: warning: metadata.name: "app-teams" is defined again '
        "at <stdin>:6; kubectl apply keeps that last definition, so lint checks only that one",
        '<stdin>:11: Pki/app1/app1-pki: error: metadata.namespace: "app1" is not selected by '
        "any PkiPolicy, so no certificate can be issued there; ask the platform team to add it "
        "to a PkiPolicy",
    ]


def test_the_same_policy_file_given_twice_is_read_once() -> None:
    policy = str(EXAMPLES / "policy.yaml")
    pki = GOOD.replace("{serviceName: app1}", "{serviceName: appp1}")
    code, out, _ = lint("--policy", policy, policy, "-", stdin=pki)
    assert code == 1
    assert out.count("app-teams") == 1, out


def test_two_pkis_with_one_name_are_one_pki() -> None:
    taken = GOOD.replace("app1-pki,", "d,").replace(
        "{serviceName: app1}", "{serviceName: app1, secretName: s}"
    )
    clash = taken.replace("d,", "e,")
    code, out, _ = lint("-", stdin="---\n".join([POLICY, taken, taken, clash]))
    assert code == 1
    assert 'is already the Secret of Pki "d" in this namespace' in out
    assert '"d", "d"' not in out


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            "apiVersion: pkiwarden.dev/v1alpha1\nkind: PKI\nmetadata: {name: x}\n",
            '<stdin>:1: PKI/x: error: kind: "PKI" is not a kind of pkiwarden.dev '
            '(allowed: Pki, PkiPolicy, PkiAuthority); did you mean "Pki"?',
        ),
        (
            "apiVersion: pkiwarden.io/v1alpha1\nkind: Pki\nmetadata: {name: x}\n",
            '<stdin>:1: Pki/default/x: error: apiVersion: "pkiwarden.io/v1alpha1" is not '
            'pkiwarden\'s API group; use "pkiwarden.dev/v1alpha1"',
        ),
        (
            "apiVersion: pkiwarden.dev/v1alpha1\nkind: Pki\nmetadata: {namespace: a}\n",
            "<stdin>:1: Pki/a/<unnamed>: error: metadata.name: is required; kubectl apply "
            "refuses an object without it",
        ),
        (
            "- apiVersion: pkiwarden.dev/v1alpha1\n  kind: Pki\n",
            "<stdin>:1: document/<unnamed>: error: document: is a list, not an object; each "
            "YAML document must be one object with apiVersion, kind, metadata and spec "
            "(separate documents with ---)",
        ),
        ("just text\n", "<stdin>:1: document/<unnamed>: error: document: is a single value"),
    ],
)
def test_documents_kubectl_apply_refuses_are_errors(document: str, expected: str) -> None:
    code, out, _ = lint("-", stdin=document)
    assert code == 1
    assert out.startswith(expected), out


def test_a_v1_list_is_checked_item_by_item_with_their_lines() -> None:
    pki = GOOD.replace("{serviceName: app1}", "{serviceName: appp1}")
    items = "\n".join("  " + line for line in pki.splitlines())
    stream = POLICY + "---\napiVersion: v1\nkind: List\nitems:\n- " + items.lstrip() + "\n"
    code, out, _ = lint("-", stdin=stream)
    assert code == 1
    assert out.startswith("<stdin>:9: Pki/app1/app1-pki: error: spec.serviceName:"), out


def test_a_selector_policy_without_the_namespace_says_lint_cannot_tell(tmp_path: Path) -> None:
    selector = POLICY.replace(
        "namespaces: [app1, app2]", "namespaceSelector: {matchLabels: {team: apps}}"
    )
    code, out, _ = lint("-", stdin=selector + "---\n" + GOOD)
    assert code == 0
    assert out == (
        '<stdin>:6: Pki/app1/app1-pki: warning: metadata.namespace: "app1" has labels that are '
        'not known, so it cannot be told whether it is selected by PkiPolicy "app-teams" '
        "(namespaceSelector); checked as if it is; give lint the Namespace with its labels "
        "(kubectl get namespace app1 -o yaml > namespace.yaml, then add namespace.yaml to the "
        "files)\n"
    )
    namespace = "apiVersion: v1\nkind: Namespace\nmetadata: {name: app1, labels: {team: %s}}\n"
    assert lint("-", stdin="---\n".join([selector, namespace % "apps", GOOD]))[:2] == (0, "")
    code, out, _ = lint("-", stdin="---\n".join([selector, namespace % "other", GOOD]))
    assert code == 1
    assert "is not selected by any PkiPolicy" in out


def test_a_directory_is_read_like_kubectl_apply_reads_it(tmp_path: Path) -> None:
    write(tmp_path, "a-policy.yaml", POLICY)
    write(tmp_path, "b-pki.yml", GOOD.replace("{serviceName: app1}", "{serviceName: appp1}"))
    write(tmp_path, "notes.txt", "not: [a manifest")
    code, out, _ = lint(str(tmp_path))
    assert code == 1
    assert out.startswith(f"{tmp_path / 'b-pki.yml'}:1: Pki/app1/app1-pki: error:"), out
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = lint(str(empty))
    assert (code, out) == (2, "")
    assert "no manifest files" in err


def test_a_missing_policy_file_exits_2_before_anything_is_printed(tmp_path: Path) -> None:
    missing = str(tmp_path / "policy.yaml")
    code, out, err = lint("--policy", missing, "-", stdin=GOOD)
    assert (code, out) == (2, "")
    assert err == f"{missing}: cannot read: No such file or directory\n"


def test_a_renewal_every_second_is_an_error_in_ci_too() -> None:
    """duration 1h with renewBefore 59m59s re-issued every second; lint refuses it as the
    webhook does, with the hint that fits."""
    body = GOOD.replace(
        "{serviceName: app1}", "{serviceName: app1, duration: 1h, renewBefore: 59m59s}"
    )
    code, out, _ = lint("-", stdin=POLICY + "---\n" + body)
    assert code == 1
    assert out == (
        '<stdin>:6: Pki/app1/app1-pki: error: spec.renewBefore: "59m59s" would renew the '
        "certificate 1s after issuing it (spec.duration 1h); at least 30m must lie between; "
        'try "20m"\n'
    )


AUTHORITIES = """\
apiVersion: v1
kind: List
items:
- {apiVersion: pkiwarden.dev/v1alpha1, kind: PkiAuthority, metadata: {name: default},
   spec: {secretName: pkiwarden-ca}}
- {apiVersion: pkiwarden.dev/v1alpha1, kind: PkiAuthority, metadata: {name: platform},
   spec: {secretName: platform-ca}}
"""


def test_given_the_authorities_a_pki_naming_another_lists_those_it_may_use(
    tmp_path: Path,
) -> None:
    policy = POLICY.replace("app2]}", "app2], allowedAuthorities: [default, platform]}")
    typo = GOOD.replace("{serviceName: app1}", "{serviceName: app1, authority: platfrom}")
    pki = write(tmp_path, "pki.yaml", typo)
    code, out, _ = lint(
        "--policy", write(tmp_path, "policy.yaml", policy),
        "--policy", write(tmp_path, "authorities.yaml", AUTHORITIES),
        pki,
    )  # fmt: skip
    assert code == 1
    assert out.splitlines() == [
        f'{pki}:1: Pki/app1/app1-pki: error: spec.authority: "platfrom" is not a PkiAuthority '
        '(this namespace may use: default, platform); did you mean "platform"?'
    ]


def test_without_authorities_lint_checks_the_policys_allowed_list_only(tmp_path: Path) -> None:
    named = GOOD.replace("{serviceName: app1}", "{serviceName: app1, authority: platform}")
    pki = write(tmp_path, "pki.yaml", named)
    code, out, _ = lint("--policy", write(tmp_path, "policy.yaml", POLICY), pki)
    assert code == 1
    assert out.splitlines() == [
        f'{pki}:1: Pki/app1/app1-pki: error: spec.authority: "platform" is not allowed by '
        'PkiPolicy "app-teams" (allowed: default)'
    ]


def test_given_the_authorities_a_policy_allowing_a_missing_one_is_warned(tmp_path: Path) -> None:
    policy = POLICY.replace("app2]}", "app2], allowedAuthorities: [default, platfrom]}")
    source = write(tmp_path, "policy.yaml", policy)
    code, out, _ = lint(source, write(tmp_path, "authorities.yaml", AUTHORITIES))
    assert code == 0
    assert out.splitlines() == [
        f"{source}:1: PkiPolicy/app-teams: warning: spec.allowedAuthorities[1]: "
        '"platfrom" is not a PkiAuthority (yet), so no Pki can use it; did you mean "platform"?'
    ]
