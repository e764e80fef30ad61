"""S3 fault injection on a boto3 client (botocore ``before-send`` hook): answer chosen
requests with an S3 error, or fail their connection, instead of sending them."""

from __future__ import annotations

import threading
from collections.abc import Callable

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectionClosedError


class _Raw:
    def __init__(self, body: bytes):
        self.body = body

    def stream(self, **kwargs):
        yield self.body


def s3_error(status: int, code: str) -> AWSResponse:
    body = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
    return AWSResponse("http://injected", status, {"Content-Type": "application/xml"}, _Raw(body))


class S3Faults:
    """``faults.add(match, fault, times=None)``: the next ``times`` requests (None = every
    one) whose ``"<Operation> <url>"`` contains ``match`` get ``fault``: ``(status, code)`` or
    ``"connection"``. Counts what it injected and what it let through."""

    def __init__(self, client):
        self.rules: list[list] = []
        self.injected: list[str] = []
        self.passed: list[str] = []
        self.lock = threading.Lock()
        self.client = client
        client.meta.events.register("before-send.s3", self._hook, unique_id="rel-s3-faults")

    def add(self, match: str, fault: tuple[int, str] | str, times: int | None = None) -> S3Faults:
        self.rules.append([match, fault, times])
        return self

    def clear(self) -> None:
        self.rules.clear()

    def remove(self) -> None:
        self.client.meta.events.unregister("before-send.s3", unique_id="rel-s3-faults")

    def _hook(self, request, event_name: str, **kwargs):
        what = f"{event_name.rsplit('.', 1)[-1]} {request.url}"
        with self.lock:
            for rule in self.rules:
                match, fault, times = rule
                if match in what and (times is None or times > 0):
                    if times is not None:
                        rule[2] = times - 1
                    self.injected.append(what)
                    break
            else:
                self.passed.append(what)
                return None
        if fault == "connection":
            raise ConnectionClosedError(endpoint_url=request.url)
        return s3_error(*fault)


def record_backoff(monkeypatch) -> list[float]:
    """Record botocore's computed retry delays (jitter pinned to its maximum) and skip the sleep."""
    from botocore.retries import standard

    delays: list[float] = []
    original: Callable = standard.ExponentialBackoff.delay_amount

    def delay_amount(self, context):
        self._random = lambda: 1.0
        delays.append(original(self, context))
        return 0

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", delay_amount)
    return delays
