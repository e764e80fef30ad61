"""Unit tests of o1pruner.metrics (no Prometheus needed: a tiny HTTP sink plays the Pushgateway)."""

from __future__ import annotations

import http.server
import socket
import threading
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from o1pruner.metrics import PipelineMetrics
from o1pruner.spec import MetricsSpec


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _samples(m: PipelineMetrics) -> dict[tuple[str, frozenset], float]:
    out = {}
    for fam in text_string_to_metric_families(m.exposition().decode()):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _drive(m: PipelineMetrics) -> None:
    m.sampling_progress("train", done=3, total=8)
    m.samples_generated("train", n_samples=16, n_tokens=1600)
    m.samples_generated("train", n_samples=16, n_tokens=400)
    m.reference_stats("train", mean_length=125.0, mean_accuracy=0.5)
    m.train_step(step=2, epoch=0.5, loss=-0.1, reward_mean=0.3, clip_fraction=0.05, mean_length=110.0,
                 accuracy=0.55, learning_rate=2e-7, tokens=1000, tokens_per_second=250.0)
    m.eval_result("base", "gsm8k", accuracy=0.6, mean_length=200.0)
    m.eval_result("pruned", "gsm8k", accuracy=0.62, mean_length=150.0)
    m.aes("gsm8k", value=0.35, length_reduction=0.25)


def test_names_labels_and_values():
    m = PipelineMetrics("job-a", "reference")
    _drive(m)
    s = _samples(m)
    lab = lambda **kw: frozenset(kw.items())  # noqa: E731
    samp = lab(pruningjob="job-a", model="reference", dataset="train")
    assert s[("o1pruner_sampling_problems_done", samp)] == 3
    assert s[("o1pruner_sampling_problems_planned", samp)] == 8
    assert s[("o1pruner_sampling_samples_total", samp)] == 32
    assert s[("o1pruner_sampling_generated_tokens_total", samp)] == 2000
    assert s[("o1pruner_reference_mean_length_tokens", samp)] == 125
    assert s[("o1pruner_reference_accuracy", samp)] == 0.5
    tr = lab(pruningjob="job-a", model="reference")
    assert s[("o1pruner_train_step", tr)] == 2
    assert s[("o1pruner_train_epoch", tr)] == 0.5
    assert s[("o1pruner_train_loss", tr)] == -0.1
    assert s[("o1pruner_train_reward_mean", tr)] == 0.3
    assert s[("o1pruner_train_clip_fraction", tr)] == 0.05
    assert s[("o1pruner_train_mean_length_tokens", tr)] == 110
    assert s[("o1pruner_train_accuracy", tr)] == 0.55
    assert s[("o1pruner_train_learning_rate", tr)] == 2e-7
    assert s[("o1pruner_train_tokens_total", tr)] == 1000
    assert s[("o1pruner_train_tokens_per_second", tr)] == 250
    assert s[("o1pruner_train_last_step_timestamp_seconds", tr)] > 1.7e9
    assert s[("o1pruner_eval_accuracy", lab(pruningjob="job-a", model="base", dataset="gsm8k"))] == 0.6
    assert s[("o1pruner_eval_accuracy", lab(pruningjob="job-a", model="pruned", dataset="gsm8k"))] == 0.62
    assert s[("o1pruner_eval_mean_length_tokens", lab(pruningjob="job-a", model="pruned", dataset="gsm8k"))] == 150
    assert s[("o1pruner_eval_aes", lab(pruningjob="job-a", dataset="gsm8k"))] == 0.35
    assert s[("o1pruner_eval_length_reduction_ratio", lab(pruningjob="job-a", dataset="gsm8k"))] == 0.25
    assert all(name.startswith("o1pruner_") for name, _ in s)


def test_instances_do_not_share_a_registry():
    a, b = PipelineMetrics("a", "m"), PipelineMetrics("b", "m")
    a.sampling_progress("d", 1, 2)
    assert b"pruningjob=\"a\"" not in b.exposition()


def test_train_step_method_is_not_shadowed():
    m = PipelineMetrics("a", "m")
    assert callable(m.train_step)


def test_start_serves_and_is_idempotent_and_tolerates_port_in_use(caplog):
    port = _free_port()
    m = PipelineMetrics("j", "m", MetricsSpec(port=port))
    m.start()
    m.start()  # idempotent
    try:
        m.sampling_progress("d", 1, 4)
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert 'o1pruner_sampling_problems_done{dataset="d",model="m",pruningjob="j"} 1.0' in body
        other = PipelineMetrics("k", "m", MetricsSpec(port=port))
        with caplog.at_level("WARNING"):
            other.start()  # port taken: a warning, no exception
        assert "cannot serve" in caplog.text
    finally:
        m.stop()


def test_start_does_nothing_with_a_pushgateway():
    port = _free_port()
    m = PipelineMetrics("j", "m", MetricsSpec(pushgatewayUrl="http://127.0.0.1:1", port=port))
    m.start()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


class _Sink(http.server.BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]] = []

    def do_PUT(self):  # noqa: N802
        n = int(self.headers.get("Content-Length", 0))
        _Sink.received.append(("PUT", self.path, self.rfile.read(n)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_push_uses_the_grouping_key():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        _Sink.received.clear()
        url = f"http://127.0.0.1:{srv.server_address[1]}"
        m = PipelineMetrics("job-a", "ref", MetricsSpec(pushgatewayUrl=url), phase="training")
        m.train_step(step=1, epoch=0.1, loss=0.0, reward_mean=0.0, clip_fraction=0.0, mean_length=1.0,
                     accuracy=0.0, learning_rate=1e-6, tokens=10, tokens_per_second=5.0)
        m.push()
        method, path, body = _Sink.received[0]
        assert method == "PUT"
        assert path == "/metrics/job/o1pruner/phase/training/pruningjob/job-a"
        assert b"o1pruner_train_step" in body
    finally:
        srv.shutdown()
        srv.server_close()


def test_push_never_raises_and_is_a_noop_without_pushgateway(caplog):
    PipelineMetrics("j", "m").push()  # not configured: nothing happens
    m = PipelineMetrics("j", "m", MetricsSpec(pushgatewayUrl=f"http://127.0.0.1:{_free_port()}"))
    with caplog.at_level("WARNING"):
        m.push()  # connection refused
    assert "push to" in caplog.text


def test_aes_none_sets_only_the_defined_series():
    m = PipelineMetrics("j", "m")
    m.aes("d", None, 0.25)  # AES undefined (base accuracy 0), length reduction known
    s = _samples(m)
    assert s[("o1pruner_eval_length_reduction_ratio", frozenset({"pruningjob": "j", "dataset": "d"}.items()))] == 0.25
    assert not [k for k in s if k[0] == "o1pruner_eval_aes"]


def test_push_min_interval_skips_pushes_that_come_too_soon(monkeypatch):
    import o1pruner.metrics as metrics_mod

    clock, sent = [100.0], []
    monkeypatch.setattr(metrics_mod.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(metrics_mod, "push_to_gateway", lambda *a, **kw: sent.append(clock[0]))
    m = PipelineMetrics("j", "m", MetricsSpec(pushgatewayUrl="http://127.0.0.1:1"))
    m.push(min_interval=5)
    m.push(min_interval=5)
    clock[0] += 4.9
    m.push(min_interval=5)
    assert sent == [100.0]
    clock[0] += 0.2
    m.push(min_interval=5)
    m.push()  # no interval: always sent (phase ends)
    assert len(sent) == 3 and sent[1] == sent[2] > 105


def test_sampling_pushes_its_progress_while_it_runs(tmp_path, monkeypatch):
    """Rate panels (samples/s, tokens/s) need points during sampling, not one push at its end."""
    import o1pruner.metrics as metrics_mod
    from o1pruner.data import Problem
    from o1pruner.sampling import collect
    from o1pruner.sampling.base import Completion, GenerationParams, Sampler
    from o1pruner.spec import PromptSpec
    from o1pruner.storage import LocalStorage

    class Echo(Sampler):
        def generate(self, prompts, params):
            for key, _messages in prompts:
                yield key, [Completion(text="so \\boxed{1}", tokens=4, finish_reason="stop")] * params.n

    pushed: list[float] = []
    monkeypatch.setattr(metrics_mod, "push_to_gateway",
                        lambda *a, registry, **kw: pushed.append(
                            registry.get_sample_value("o1pruner_sampling_problems_done",
                                                      {"pruningjob": "j", "model": "m", "dataset": "d"})))
    monkeypatch.setattr(collect, "SAMPLING_PUSH_SECONDS", 0.0)
    m = PipelineMetrics("j", "m", MetricsSpec(pushgatewayUrl="http://127.0.0.1:1"), phase="sampling")
    problems = [Problem(id=f"p{i}", problem=f"{i}?", answer="1") for i in range(5)]
    collect.sample_problems(Echo(), problems, PromptSpec(), GenerationParams(n=2, temperature=1.0, top_p=1.0,
                                                                            max_tokens=16, seed=0),
                            store=LocalStorage(tmp_path), prefix="s/", dataset="d", metrics=m)
    assert pushed[:5] == [1.0, 2.0, 3.0, 4.0, 5.0]
