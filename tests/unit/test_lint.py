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
        f"{EXAMPLES / 'app1.yaml'}: Pki/app1/app1-pki: error: spec.serviceName: "
        '"appp1" is not allowed in namespace "app1" (allowed by PkiPolicy "app-teams": '
        'app1, app2); did you mean "app1"?'
    ]
    assert err == ""


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
    assert out.startswith("<stdin>: Pki/app1/app1-pki: error: metadata.namespace: ")


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
        '<stdin>: Pki/app1/app1-pki: warning: spec.commonName: "other.example" '
        "is not among spec.dnsNames; it will be added to them\n"
    )


def test_policy_findings_and_other_kinds() -> None:
    stream = (
        POLICY.replace("[app1, app2]}", "[app1, 1app]}")
        + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n"
    )
    code, out, _ = lint("-", stdin=stream)
    assert code == 1
    assert out.startswith(
        '<stdin>: PkiPolicy/app-teams: error: spec.allowedServiceNames[1]: "1app" must start'
    )


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
