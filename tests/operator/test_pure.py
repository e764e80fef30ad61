"""vllm_args, deepspeed_config, status helpers and settings: pure functions."""

from __future__ import annotations

from pathlib import Path

import pytest

from o1pruner.deepspeed_config import build_deepspeed_config
from o1pruner.spec import TrainingSpec, load_job
from o1pruner.vllm_args import vllm_server_args
from o1pruner_operator.reconcile import job_state, pod_problem, spec_hash, validate, Failure
from o1pruner_operator.settings import OperatorConfig
from o1pruner_operator.status import parse_results, set_condition

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def spec():
    return load_job(ROOT / "examples" / "pruningjob.yaml").spec


def test_vllm_args(spec):
    args = vllm_server_args(spec, "AIDC-AI/Marco-o1")
    assert args[:2] == ["--model", "AIDC-AI/Marco-o1"]
    flags = dict(zip(args[::2], args[1::2]))
    assert flags == {"--model": "AIDC-AI/Marco-o1", "--served-model-name": "marco-o1", "--host": "0.0.0.0",
                     "--port": "8000", "--tensor-parallel-size": "8", "--max-model-len": "16384",
                     "--gpu-memory-utilization": "0.9", "--seed": "0", "--dtype": "bfloat16"}


def test_vllm_args_overrides_and_extras(spec):
    spec.sampling.sampler.extra_args = ["--enable-prefix-caching"]
    spec.model.trust_remote_code = True
    args = vllm_server_args(spec, "/models/x", port=8123, served_name="tiny",
                            device_overrides={"dtype": "float32", "gpu_memory_utilization": None,
                                              "--enforce-eager": True})
    assert "--gpu-memory-utilization" not in args
    assert args[args.index("--dtype") + 1] == "float32" and args[args.index("--port") + 1] == "8123"
    assert "--trust-remote-code" in args and "--enforce-eager" in args
    assert args[-1] == "--enable-prefix-caching"
    assert args[args.index("--served-model-name") + 1] == "tiny"


def test_deepspeed_config():
    training = TrainingSpec(batch_size=32, micro_batch_size=2, max_grad_norm=10.0)
    ds = build_deepspeed_config(training, world_size=8)
    assert ds["gradient_accumulation_steps"] == 2 and ds["train_micro_batch_size_per_gpu"] == 2
    assert ds["train_batch_size"] == 32 and ds["gradient_clipping"] == 10.0
    assert ds["zero_optimization"]["stage"] == 3 and ds["bf16"] == {"enabled": True}
    assert "offload_optimizer" not in ds["zero_optimization"]
    training.deepspeed.zero_stage = 2
    training.deepspeed.offload_optimizer = True
    z = build_deepspeed_config(training, 8)["zero_optimization"]
    assert z["stage"] == 2 and z["offload_optimizer"]["device"] == "cpu"
    with pytest.raises(ValueError, match="multiple of microBatchSize x world size"):
        build_deepspeed_config(training, world_size=5)
    training.deepspeed.offload_params = True
    with pytest.raises(ValueError, match="zeroStage 3"):
        build_deepspeed_config(training, 8)


def test_parse_results_is_tolerant():
    full = parse_results('{"datasets": {"a": {"baseAccuracy": 0.5, "prunedAccuracy": 0.6, "baseLength": 200,'
                         ' "prunedLength": 100, "aes": 1.2}}, "average": {"aes": 1.2}}')
    assert full["datasets"]["a"]["lengthReduction"] == 0.5 and full["average"] == {"aes": 1.2}
    bare = parse_results('log line\n{"gsm8k": {"base_accuracy": "0.9", "pruned_accuracy": 1, "junk": "x"}}')
    assert bare == {"datasets": {"gsm8k": {"baseAccuracy": 0.9, "prunedAccuracy": 1.0}},
                    "average": {"baseAccuracy": 0.9, "prunedAccuracy": 1.0}}
    assert parse_results("Traceback: boom") is None
    assert parse_results("") is None and parse_results('{"a": 1}') is None
    assert parse_results('{"datasets": {"a": {"aes": NaN}}}') is None


def test_condition_transition_time_moves_only_on_change():
    conds = set_condition([], "Trained", False, "Running", "m", 1, "t1")
    conds = set_condition(conds, "Trained", False, "Running", "m2", 2, "t2")
    assert conds[0]["lastTransitionTime"] == "t1" and conds[0]["observedGeneration"] == 2
    conds = set_condition(conds, "Trained", True, "Done", "ok", 2, "t3")
    assert conds[0]["lastTransitionTime"] == "t3" and conds[0]["status"] == "True"


def test_child_state_readers():
    assert job_state({"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]}})[:2] \
        == ("Failed", "DeadlineExceeded")
    assert job_state({"status": {"succeeded": 1}})[0] == "Succeeded"
    assert job_state({})[0] == "Running"
    crash = {"status": {"containerStatuses": [{"name": "vllm", "restartCount": 2,
                                               "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}
    assert pod_problem(crash, 3) is None
    crash["status"]["containerStatuses"][0]["restartCount"] = 3
    assert "CrashLoopBackOff after 3 restarts" in pod_problem(crash, 3)


def test_operator_side_validation_names_fields(spec):
    body = {"metadata": {"name": "7b-model"}, "spec": {}}
    with pytest.raises(Failure, match="metadata.name"):
        validate(body)
    wire = spec.to_wire()
    wire["storage"]["uri"] = "/data/runs"
    with pytest.raises(Failure, match="spec.storage.uri"):
        validate({"metadata": {"name": "ok"}, "spec": wire})
    assert spec_hash({"a": 1, "suspend": True}) == spec_hash({"a": 1, "suspend": False})


def test_config_from_env():
    cfg = OperatorConfig.from_env({"O1PRUNER_NAMESPACES": "a, b", "O1PRUNER_PEERING": "o1",
                                   "O1PRUNER_RESYNC_SECONDS": "5", "O1PRUNER_METRICS_PORT": "9090"})
    assert cfg.namespaces == ("a", "b") and not cfg.clusterwide and cfg.peering == "o1"
    assert cfg.resync_seconds == 5.0 and cfg.metrics_port == 9090
    assert OperatorConfig.from_env({}).clusterwide


def test_results_from_the_real_termination_summary():
    from o1pruner.report import termination_summary

    report = {"results": {"datasets": {"math500": {
        "baseAccuracy": 0.7, "prunedAccuracy": 0.72, "baseLength": 2000.0, "prunedLength": 1200.0,
        "lengthReduction": 0.4, "accuracyChange": 0.02, "aes": None}},
        "average": {"baseAccuracy": 0.7, "prunedAccuracy": 0.72, "lengthReduction": 0.4, "aes": None}},
        "tokens": {"base": 1, "pruned": 2}}
    import json
    parsed = parse_results(json.dumps(termination_summary(report), separators=(",", ":")))
    assert parsed["datasets"]["math500"]["accuracyChange"] == 0.02
    assert "aes" not in parsed["datasets"]["math500"]  # None is left out, not a crash
    assert parsed["average"]["lengthReduction"] == 0.4


async def test_kube_client_reloads_a_rotated_token(tmp_path):
    from aiohttp import web

    from o1pruner_operator.kube import CONFIGMAPS, Credentials, KubeClient

    seen = []

    async def handler(request):
        seen.append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") != "Bearer new":
            return web.json_response({"kind": "Status", "code": 401, "reason": "Unauthorized"}, status=401)
        return web.json_response({"metadata": {"name": "x"}})

    app = web.Application()
    app.router.add_get("/api/v1/namespaces/ns/configmaps/x", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    token = tmp_path / "token"
    token.write_text("new\n")
    client = KubeClient(Credentials(server=f"http://127.0.0.1:{port}", token="old", token_path=str(token)))
    try:
        assert (await client.get(CONFIGMAPS, "ns", "x"))["metadata"]["name"] == "x"
        assert seen == ["Bearer old", "Bearer new"]
    finally:
        await client.close()
        await runner.cleanup()


async def test_kube_client_retries_a_dropped_connection():
    from aiohttp import web

    from o1pruner_operator.kube import CONFIGMAPS, Credentials, KubeClient

    calls = []

    async def handler(request):
        calls.append(1)
        if len(calls) == 1:  # the server drops the connection without answering
            request.transport.close()
            return web.Response()
        return web.json_response({"metadata": {"name": "x"}})

    app = web.Application()
    app.router.add_post("/api/v1/namespaces/ns/configmaps", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    client = KubeClient(Credentials(server=f"http://127.0.0.1:{port}"))
    try:
        assert await client.create(CONFIGMAPS, "ns", {"metadata": {"name": "x"}}) is True
        assert len(calls) == 2
    finally:
        await client.close()
        await runner.cleanup()
