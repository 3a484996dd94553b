"""The operator's kit (deploy/): alert rules and a dashboard that name only metrics a
running daemon exports, manifests that Kubernetes' own schemas accept, YAML that lints."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import promql_parser
import pytest
import yaml

from certsync.sandbox import SandboxState, World, generate
from tests import kustomize
from tests.conftest import Cli, metric_sum, venv_tool, wait_for

ROOT = Path(__file__).parent.parent
DEPLOY = ROOT / "deploy"
KUBERNETES = "1.30.0"
# Selectors Prometheus answers itself, not certsync.
BUILTIN = {"time"}


def _alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "certsync.json").read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def _selectors(node: Any) -> Iterator[str]:
    """Every metric name a PromQL expression selects."""
    kind = type(node).__name__
    if kind == "VectorSelector":
        yield node.name
        return
    for attr in ("expr", "lhs", "rhs", "param", "vector_selector"):
        child = getattr(node, attr, None)
        if child is not None:
            yield from _selectors(child)
    for arg in getattr(node, "args", None) or []:
        yield from _selectors(arg)


def _named(expr: str) -> set[str]:
    # Grafana's own variable, a duration once Grafana has filled it in.
    return set(_selectors(promql_parser.parse(expr.replace("$__rate_interval", "5m"))))


def _exported(text: str) -> set[str]:
    """Series names a scrape holds, with the suffixes each type adds (a counter's TYPE
    line may or may not carry its `_total`, by the client's version)."""
    names: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        if kind == "counter":
            base = name.removesuffix("_total")
            names |= {base + "_total", base + "_created"}
        elif kind == "histogram":
            names |= {name + s for s in ("_bucket", "_sum", "_count", "_created")}
        else:
            names.add(name)
    return names


@pytest.fixture
def world(sandbox_state: SandboxState, cli: Cli) -> World:
    w = generate(sandbox_state, users=40, types=2, seed=3, today=date.today(), inactive_share=0)
    (cli.cwd / "mappings.toml").write_text(w.mapping_toml)
    return w


@pytest.mark.e2e
def test_alerts_and_the_dashboard_name_only_metrics_the_daemon_exports(
    daemons: Callable[..., tuple[subprocess.Popen[str], str]],
    sandbox_state: SandboxState,
    world: World,
) -> None:
    """Scraped after a converged cycle and one the guard held back: every expression of
    the alert rules and the dashboard parses as PromQL and names a metric it exports."""
    _, base = daemons()
    wait_for(
        lambda: metric_sum(httpx.get(f"{base}/metrics").text, "certsync_runs_total") >= 1,
        what="a first cycle",
    )
    with sandbox_state.lock:  # half the records revoked upstream: the guard holds them
        for i in range(40):
            sandbox_state.records[i] = {**sandbox_state.records[i], "lifecycle_status": "revoked"}
    wait_for(
        lambda: metric_sum(httpx.get(f"{base}/metrics").text, "certsync_held_back_revocations") > 0,
        what="a held-back cycle",
    )
    text = httpx.get(f"{base}/metrics").text
    exported = _exported(text) | BUILTIN
    exprs = [r["expr"] for r in _alert_rules()] + _dashboard_exprs()
    named = {name: expr for expr in exprs for name in _named(expr)}
    assert len(exprs) > 20 and len(named) > 12
    unknown = {name: expr for name, expr in named.items() if name not in exported}
    assert unknown == {}
    assert re.search(r'^certsync_build_info\{[^}]*version="[^"]+"', text, re.M)
    assert "certsync_leader 1.0" in text


def test_every_alert_says_how_bad_what_and_where_to_read_more() -> None:
    runbook = (ROOT / "docs" / "operations.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", runbook, re.M)
    }
    rules = _alert_rules()
    assert len(rules) >= 8
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        notes = rule["annotations"]
        assert notes["summary"] and len(notes["description"]) > 60, rule["alert"]
        page, _, anchor = notes["runbook_url"].partition("#")
        assert page == "docs/operations.md" and anchor in anchors, rule["alert"]


def test_the_prometheus_rule_resource_holds_the_same_rules() -> None:
    resource = yaml.safe_load((DEPLOY / "kubernetes" / "base" / "prometheusrule.yaml").read_text())
    plain = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())
    assert resource["kind"] == "PrometheusRule" and resource["spec"] == plain


def _overlay(name: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (r["kind"], r["metadata"]["name"]): r
        for r in kustomize.render(DEPLOY / "kubernetes" / "overlays" / name)
    }


def _validate(resource: dict[str, Any]) -> None:
    if resource["apiVersion"].startswith("monitoring.coreos.com/"):
        return  # the Prometheus Operator's resources: asserted by hand below
    kubernetes_validate.validate(resource, KUBERNETES, strict=True)


@pytest.mark.parametrize("overlay", ["single", "ha"])
def test_each_overlay_renders_to_valid_kubernetes(overlay: str) -> None:
    resources = _overlay(overlay)
    for resource in resources.values():
        _validate(resource)
    deployment = resources[("Deployment", "certsync")]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["terminationGracePeriodSeconds"] > 30  # the daemon's stop timeout
    monitor = resources[("ServiceMonitor", "certsync")]
    service = resources[("Service", "certsync")]
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    if overlay == "single":
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}
        assert env["CERTSYNC_DATABASE_URL"] == "sqlite:////data/certsync.db"
        data = next(v for v in pod["volumes"] if v["name"] == "data")
        assert data == {"name": "data", "persistentVolumeClaim": {"claimName": "certsync-data"}}
        assert ("PersistentVolumeClaim", "certsync-data") in resources
    else:
        assert deployment["spec"]["replicas"] == 2
        assert env["CERTSYNC_DATABASE_URL"].startswith("postgresql://")
        assert "CERTSYNC_DATABASE_PASSWORD_FILE" in env
        assert resources[("PodDisruptionBudget", "certsync")]["spec"]["minAvailable"] == 1


def test_the_cronjob_example_is_valid_kubernetes() -> None:
    (job,) = yaml.safe_load_all((DEPLOY / "kubernetes" / "examples" / "cronjob.yaml").read_text())
    _validate(job)
    assert job["spec"]["concurrencyPolicy"] == "Forbid"


def test_without_kubectl_the_overlays_render_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite's own renderer (tests/kustomize.py) stands in where no kubectl is; where
    one is, both must agree."""
    if shutil.which("kubectl") is None and shutil.which("kustomize") is None:
        pytest.skip("no kubectl or kustomize on this machine to compare with")

    def named_sorted(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: named_sorted(v) for k, v in x.items()}
        if isinstance(x, list):
            items = [named_sorted(i) for i in x]
            if all(isinstance(i, dict) and "name" in i for i in items):
                return sorted(items, key=lambda i: i["name"])
            return items
        return x

    for overlay in ("single", "ha"):
        real = named_sorted(_overlay(overlay))
        monkeypatch.setattr("tests.kustomize.shutil.which", lambda _name: None)
        ours = named_sorted(_overlay(overlay))
        monkeypatch.undo()
        assert ours == real


def test_yaml_and_json_lint_clean() -> None:
    result = venv_tool(
        "yamllint",
        "--strict",
        "-c",
        str(ROOT / ".yamllint.yaml"),
        str(DEPLOY),
        str(ROOT / "docker-compose.yml"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for path in DEPLOY.rglob("*.json"):
        text = path.read_text()
        assert text == json.dumps(json.loads(text), indent=2) + "\n", path
