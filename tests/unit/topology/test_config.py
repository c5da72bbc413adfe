from __future__ import annotations

import pytest
from pydantic import ValidationError

from alora_serve.topology.config import DecodeGroup, Scaling, TopologyConfig, load_topology


def test_embedded_default_is_disaggregated_with_a_merged_and_a_lora_worker() -> None:
    config = load_topology()
    assert config.topology == "disaggregated"
    modes = {g.name: g.resolved_mode for g in config.decode}
    assert modes == {"answerability": "merged", "rag-checks": "lora"}


def test_colocated_is_one_override_away(tmp_path) -> None:
    assert load_topology(topology="colocated").topology == "colocated"
    other = tmp_path / "t.yaml"
    other.write_text("topology: colocated\n")
    assert load_topology(other).topology == "colocated"


def test_one_merged_decode_deployment_per_intrinsic_by_default() -> None:
    groups = TopologyConfig().decode_groups(["answerability", "citations"])
    assert [(g.name, g.intrinsics, g.resolved_mode) for g in groups] == [
        ("answerability", ["answerability"], "merged"),
        ("citations", ["citations"], "merged"),
    ]


def test_merged_mode_serves_one_intrinsic() -> None:
    with pytest.raises(ValidationError, match="merged mode serves exactly one intrinsic"):
        DecodeGroup(name="g", intrinsics=["a", "b"], mode="merged")
    assert DecodeGroup(name="g", intrinsics=["a", "b"]).resolved_mode == "lora"


def test_an_intrinsic_in_two_groups_or_none_is_refused() -> None:
    twice = [DecodeGroup(name="x", intrinsics=["a"]), DecodeGroup(name="y", intrinsics=["a"])]
    with pytest.raises(ValidationError, match="one decode group only"):
        TopologyConfig(decode=twice)
    config = TopologyConfig(decode=[DecodeGroup(name="x", intrinsics=["a"])])
    with pytest.raises(ValueError, match=r"\['b'\] are in no decode group"):
        config.decode_groups(["a", "b"])
    with pytest.raises(ValueError, match="not in the library"):
        TopologyConfig(intrinsics=["zzz"]).decode_groups(["a"])


def test_scaling_becomes_serve_options_and_autoscaling_is_validated() -> None:
    fixed = Scaling(num_replicas=2, resources={"kv_host": 1}).deployment_options()
    assert fixed["num_replicas"] == 2
    assert fixed["ray_actor_options"]["resources"] == {"kv_host": 1}
    auto = Scaling(autoscaling={"min_replicas": 1, "max_replicas": 3}).deployment_options()
    assert "num_replicas" not in auto and auto["autoscaling_config"]["max_replicas"] == 3
    with pytest.raises(ValidationError):
        Scaling(autoscaling={"min_replicas": 4, "max_replicas": 1})
    with pytest.raises(ValidationError, match="extra"):
        TopologyConfig.model_validate({"topology": "colocated", "replicas": 3})


def test_the_embedded_topology_serves_grpc_and_flags_override_only_what_is_given() -> None:
    embedded = load_topology()
    assert embedded.gateway is not None and embedded.gateway.port == 50051
    same = embedded.with_gateway_address(None, None)
    assert same.gateway == embedded.gateway
    moved = embedded.with_gateway_address(None, 6000)
    assert (moved.gateway.host, moved.gateway.port) == (embedded.gateway.host, 6000)
    with pytest.raises(ValidationError, match="port"):
        embedded.with_gateway_address("0.0.0.0", 70000)
    assert TopologyConfig().with_gateway_address("::", 1).gateway is None  # no gateway


def test_every_deployment_waits_out_the_gateway_s_grace_on_shutdown() -> None:
    assert TopologyConfig().shutdown_timeout_s == 20.0  # Serve's default
    long_grace = {"gateway": {"shutdown_grace_s": 60}}
    assert TopologyConfig.model_validate(long_grace).shutdown_timeout_s == 70.0


def test_a_gateway_is_turned_off_by_leaving_it_out_not_by_a_flag() -> None:
    with pytest.raises(ValidationError, match=r"gateway\.enabled"):
        TopologyConfig.model_validate({"gateway": {"enabled": False}})
    assert TopologyConfig.model_validate({"gateway": None}).gateway is None


def test_the_autoscaling_example_is_the_embedded_default_with_one_scaled_decode_group() -> None:
    from alora_serve.topology.config import EMBEDDED_CONFIG

    scaled = load_topology(EMBEDDED_CONFIG.with_name("autoscaling.yaml"))
    embedded = load_topology()
    answerability = scaled.decode[0]
    assert answerability.name == "answerability"
    assert answerability.scaling.autoscaling is not None
    options = answerability.scaling.deployment_options()["autoscaling_config"]
    assert (options["min_replicas"], options["max_replicas"]) == (1, 2)
    unscaled = scaled.decode[0].model_copy(update={"scaling": embedded.decode[0].scaling})
    same = scaled.model_copy(update={"decode": [unscaled, *scaled.decode[1:]]})
    assert same == embedded
