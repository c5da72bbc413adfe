"""The Helm chart, rendered by Helm's own SDK: lint, golden files of every example, every
object validated (Kubernetes schemas, KubeRay's CRD, Ray Serve's schema, our topology)."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from alora_serve.deploy import chart, validate
from alora_serve.topology.config import load_topology
from alora_serve.topology.serve_app import IMPORT_PATH, ServeArgs

GOLDEN = Path(__file__).parents[2] / "golden" / "helm"
RELEASE = chart.Release("alora", "intrinsics")
EXAMPLES = sorted(p.stem for p in chart.EXAMPLES_DIR.glob("*.yaml"))


def _example(name: str) -> dict[str, Any]:
    return chart.load_values(chart.EXAMPLES_DIR / f"{name}.yaml")


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, str]]:
    return {name: chart.render(_example(name), RELEASE) for name in EXAMPLES}


def _objects(rendered: dict[str, str], kind: str) -> list[dict[str, Any]]:
    return [o for o in chart.manifests(rendered) if o["kind"] == kind]


def _rayservice(rendered: dict[str, str]) -> dict[str, Any]:
    (service,) = _objects(rendered, "RayService")
    return service


def _serve_args(rendered: dict[str, str]) -> ServeArgs:
    (app,) = yaml.safe_load(_rayservice(rendered)["spec"]["serveConfigV2"])["applications"]
    assert app["import_path"] == IMPORT_PATH
    return ServeArgs.model_validate(app["args"])


def _golden_text(rendered: dict[str, str]) -> str:
    return "".join(f"# {path}\n{text.strip()}\n" for path, text in sorted(rendered.items()))


def test_the_examples_are_the_four_the_docs_name():
    assert EXAMPLES == ["cpu-kind", "dev-single-gpu", "large-model", "multi-gpu"]


def test_helm_lint_finds_nothing_with_defaults_and_every_example():
    assert chart.lint() == []
    for name in EXAMPLES:
        assert chart.lint(values=_example(name)) == [], name


@pytest.mark.parametrize("name", EXAMPLES)
def test_rendered_example_matches_its_golden_file(rendered, name):
    golden = GOLDEN / f"{name}.yaml"
    text = _golden_text(rendered[name])
    if os.environ.get("ALORA_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert golden.exists(), f"no {golden}: run with ALORA_UPDATE_GOLDEN=1 and review the diff"
    assert text == golden.read_text(), (
        f"{name} renders differently from {golden}; if intended, rerun with "
        "ALORA_UPDATE_GOLDEN=1 and review the diff"
    )


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_rendered_object_is_valid(rendered, name):
    objects = chart.manifests(rendered[name])
    assert {o["kind"] for o in objects} >= {"RayService", "Service"}
    assert validate.all_problems(objects) == []


def test_the_cpu_example_serves_the_embedded_default_layout(rendered):
    topology = _serve_args(rendered["cpu-kind"]).topology
    embedded = load_topology()
    assert topology.model is None and topology.library is None  # embedded, stand-ins
    assert [(g.name, g.intrinsics) for g in topology.decode] == [
        (g.name, g.intrinsics) for g in embedded.decode
    ]
    assert topology.prefill.engine.kv_store_gib == embedded.prefill.engine.kv_store_gib
    assert topology.gateway is not None and topology.gateway.host == "0.0.0.0"
    workers = _rayservice(rendered["cpu-kind"])["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    for group in workers:
        limits = group["template"]["spec"]["containers"][0]["resources"].get("limits", {})
        assert "nvidia.com/gpu" not in limits


def test_gpu_groups_request_gpus_shm_and_carry_placement(rendered):
    cluster = _rayservice(rendered["large-model"])["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    assert set(groups) == {"gateway", "prefill", "decode"}
    for name in ("prefill", "decode"):
        spec = groups[name]["template"]["spec"]
        resources = spec["containers"][0]["resources"]
        assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == 1
        shm = next(v for v in spec["volumes"] if v["name"] == "shm")
        assert shm["emptyDir"]["medium"] == "Memory"
        assert spec["nodeSelector"]["nvidia.com/gpu.product"]
        assert spec["tolerations"][0]["key"] == "nvidia.com/gpu"
        assert f"alora_group_{name}" in groups[name]["rayStartParams"]["resources"]
    topology = _serve_args(rendered["large-model"]).topology
    assert topology.prefill.scaling.resources == {"alora_group_prefill": 1}
    assert topology.decode[0].scaling.resources == {"alora_group_decode": 1}
    assert topology.prefill.scaling.autoscaling["max_replicas"] == 4
    assert topology.model == "/mnt/pvc/models/granite-3.3-8b-instruct"


def test_gateway_pod_probes_its_plaintext_health_port_and_mounts_tls(rendered):
    cluster = _rayservice(rendered["multi-gpu"])["spec"]["rayClusterConfig"]
    (gateway,) = [g for g in cluster["workerGroupSpecs"] if g["groupName"] == "gateway"]
    container = gateway["template"]["spec"]["containers"][0]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": 50052}
    assert {"name": "tls", "mountPath": "/etc/alora/tls", "readOnly": True} in container[
        "volumeMounts"
    ]
    topology = _serve_args(rendered["multi-gpu"]).topology
    assert topology.gateway.health_port == 50052
    assert str(topology.gateway.tls.cert_file) == "/etc/alora/tls/tls.crt"
    assert topology.gateway.tls.client_ca_file is None
    assert str(topology.gateway.tokens_file) == "/etc/alora/tokens/tokens.yaml"
    assert topology.gateway.resources == {"alora_gateway": 1}
    (service,) = [s for s in _objects(rendered["multi-gpu"], "Service")]
    assert service["spec"]["ports"][0]["appProtocol"] == "grpc"
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "gateway"
    (route,) = _objects(rendered["multi-gpu"], "GRPCRoute")
    assert route["spec"]["rules"][0]["backendRefs"][0]["name"] == service["metadata"]["name"]


def test_hf_uris_are_downloaded_by_the_init_step_into_the_cache(rendered):
    cluster = _rayservice(rendered["multi-gpu"])["spec"]["rayClusterConfig"]
    init = cluster["headGroupSpec"]["template"]["spec"]["initContainers"][0]
    script = init["args"][0]
    assert 'hf download "ibm-granite/granite-3.3-8b-instruct"' in script.splitlines()[1]
    assert {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "HF_TOKEN"}},
    } in init["env"]
    topology = _serve_args(rendered["multi-gpu"]).topology
    assert topology.library == "/mnt/cache/hf-models/ibm-granite/granite-lib-rag-r1.0"
    assert len(topology.decode) == 4 and all(g.resolved_mode == "merged" for g in topology.decode)


def test_notes_say_how_to_call_it(rendered):
    text = chart.notes(rendered["cpu-kind"])
    assert "port-forward svc/alora-alora-serve-grpc 50051:50051" in text
    assert "grpcurl -plaintext localhost:50051 alora.v1.Intrinsics/ListIntrinsics" in text
    assert "stand-ins" in text
    assert "-cacert ca.crt" in chart.notes(rendered["multi-gpu"])


def _with(values: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(values)
    *parents, last = path.split(".")
    node = changed
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return changed


BAD_VALUES = {
    "wrong type": ("gateway.port", "fifty", "at '/gateway/port': got string, want integer"),
    "unknown decode field": (
        "serve.decode.0.adapter",
        "x",
        "at '/serve/decode/0': additional properties 'adapter' not allowed",
    ),
    "negative replicas": ("workerGroups.0.replicas", -1, "replicas': minimum: got -1, want 0"),
    "missing model": ("model.uri", None, "at '/model': missing property 'uri'"),
    "bad storage uri": ("model.uri", "s3://bucket/model", "at '/model/uri'"),
    "bad engine field name": ("serve.prefill.engine.Dtype", "x", "invalid propertyName 'Dtype'"),
    "min above max": (
        "workerGroups.0.minReplicas",
        3,
        "workerGroups cpu: minReplicas (3) is above maxReplicas (1)",
    ),
    "autoscaling min above max": (
        "serve.decode.0.scaling",
        {"autoscaling": {"min_replicas": 3, "max_replicas": 2}},
        "serve decode answerability: autoscaling min_replicas (3) is above max_replicas (2)",
    ),
    "unknown worker group": (
        "serve.prefill.workerGroup",
        "gpu",
        'serve prefill: workerGroup "gpu" is not one of workerGroups [cpu]',
    ),
    "stand-ins without the embedded model": (
        "model.uri",
        "hf://org/model",
        "adapters.uri is empty (the embedded library: adapters trained for the embedded model, "
        "seeded stand-ins for the rest), which only the embedded model has",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_bad_values_are_refused_with_a_message_naming_them(case):
    path, value, message = BAD_VALUES[case]
    values = _with(_example("cpu-kind"), path, value)  # None removes a key, as in Helm
    with pytest.raises(chart.ChartError) as e:
        chart.render(values, RELEASE)
    assert message in str(e.value)


def test_the_crd_check_is_strict_and_the_serve_config_is_parsed(rendered):
    service = _rayservice(rendered["cpu-kind"])
    unknown = copy.deepcopy(service)
    unknown["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParam"] = {}
    assert "'rayStartParam' was unexpected" in validate.problems(unknown)[0]
    bad_type = copy.deepcopy(service)
    bad_type["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["replicas"] = "one"
    assert "'one' is not of type 'integer'" in validate.problems(bad_type)[0]
    config = yaml.safe_load(service["spec"]["serveConfigV2"])
    config["applications"][0]["args"]["topology"]["decode"][0]["mode"] = "fused"
    config["applications"][0]["import_path"] = "alora_serve.topology.serve_app:missing"
    bad_serve = copy.deepcopy(service)
    bad_serve["spec"]["serveConfigV2"] = yaml.safe_dump(config)
    found = " ".join(validate.problems(bad_serve))
    assert "import_path alora_serve.topology.serve_app:missing not found" in found
    assert "topology.decode.0.mode" in found


def test_builtin_kinds_are_checked_by_kubernetes_schemas(rendered):
    (service,) = _objects(rendered["cpu-kind"], "Service")
    service["spec"]["ports"][0]["appProtcol"] = "grpc"
    assert "'appProtcol' was unexpected" in validate.problems(service)[0]
