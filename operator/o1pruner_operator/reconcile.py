"""The level-triggered reconciler: read the PruningJob and its children, act, write status.

Every call starts from what the API server says now (no in-memory state), creates children
under deterministic names (409 = already there) and moves phases forward:

    Pending -> Sampling -> Training -> Evaluating -> Succeeded | Failed

With ``spec.rounds.count > 1`` an evaluated round that should be followed (:mod:`o1pruner.rounds`)
goes back to Sampling with ``status.round`` + 1; the round's children are named ``<job>-r<n>-...``.

A phase change is written to ``status`` before anything of the new phase is done (a pass that
changes phase ends there and the next pass acts on the stored phase), so a failing first action
of a phase never replays the previous one. A child the API server refuses to create (403, 404
for a kind the cluster does not serve, 400/422 from validation or a webhook) blocks the job with
a ``Blocked`` condition naming the reason; the create is retried every ``BLOCKED_RETRY_SECONDS``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from o1pruner.rounds import result_round, stop_reason
from o1pruner.spec import (
    SamplerSpec, SpecError, TrainerResources, cluster_errors, job_name_error, parse_spec,
)

from o1pruner_operator import metrics
from o1pruner_operator.backends import BackendMissing, Backends, TrainingBackend, chosen_backend
from o1pruner_operator.kube import (
    CONFIGMAPS, DEPLOYMENTS, JOBS, NETWORKPOLICIES, PODS, PRUNINGJOBS, SERVICES, ApiError, KubeClient,
)
from o1pruner_operator.manifests import (
    JobContext, config_map, eval_job, sample_job, sampler_deployment, sampler_network_policy, sampler_service,
)
from o1pruner_operator.manifests.common import LABEL_COMPONENT, LABEL_JOB, LABEL_KUEUE_QUEUE, Names, round_labels
from o1pruner_operator.manifests.sampler import component as sampler_component
from o1pruner_operator.settings import OperatorConfig
from o1pruner_operator.status import (
    TERMINAL, WARNING_CONDITIONS, artifacts, get_condition, guard_condition, is_true, now_iso, parse_diagnostics,
    parse_results, parse_time, round_entry, set_condition, truncation_condition,
)

log = logging.getLogger("o1pruner_operator.reconcile")

#: (body, type, reason, message) -> None; kopf.event in the operator, a list in unit tests.
EventSink = Callable[[dict[str, Any], str, str, str], None]
MAX_MESSAGE = 1024


BLOCKED_RETRY_SECONDS = 300
#: How many phase changes one reconcile may make (each written before the next acts).
MAX_PASSES = 4
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


class Blocked(Exception):
    """The API server refused to create a child in a way a retry will not fix by itself."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        self.message = message[:MAX_MESSAGE]
        super().__init__(f"{reason}: {message}")


def blocked_reason(status: int, training: bool) -> str | None:
    """The condition reason for an API error at create, or None when a retry may just work."""
    if status == 403:
        return "Forbidden"
    if status == 404:
        return "TrainingBackendMissing" if training else "ResourceMissing"
    if status in (400, 422):
        return "Invalid"
    return None


class Failure(Exception):
    """A child failed or the spec is unusable: the job goes to Failed with this reason."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        self.message = message[:MAX_MESSAGE]
        super().__init__(f"{reason}: {message}")


def spec_hash(spec: dict[str, Any]) -> str:
    """Hash of everything in spec but ``suspend`` (the only field that may change mid-run)."""
    rest = {k: v for k, v in spec.items() if k != "suspend"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()[:16]


def validate(body: dict[str, Any]) -> Any:
    """The spec model, or a Failure naming the field: the same name rule and cluster-only rules
    as the CRD (a job admitted by an older CRD, or created without it, is caught here)."""
    problem = job_name_error(body["metadata"]["name"])
    if problem:
        raise Failure("InvalidSpec", problem)
    try:
        spec = parse_spec(body.get("spec") or {})
    except SpecError as exc:
        raise Failure("InvalidSpec", str(exc)) from None
    errors = cluster_errors(spec)
    if errors:
        raise Failure("InvalidSpec", "; ".join(f"{path}: {msg}" for path, msg in errors))
    return spec


def apply_operator_defaults(spec: Any, config: OperatorConfig) -> Any:
    """Operator-wide defaults (Helm values) for jobs that keep the model's built-in values."""
    sampler, trainer = spec.sampling.sampler, spec.training.trainer
    if config.sampler_image and sampler.image == SamplerSpec.model_fields["image"].default:
        sampler.image = config.sampler_image
    if config.trainer_image and trainer.image == TrainerResources.model_fields["image"].default:
        trainer.image = config.trainer_image
    if config.pushgateway_url and not spec.metrics.pushgateway_url:
        spec.metrics.pushgateway_url = config.pushgateway_url
    return spec


@dataclass
class StatusDraft:
    """The status being written by one reconcile, with the events it implies."""

    old: dict[str, Any]
    generation: int | None
    now: str
    new: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    transitions: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.new = json.loads(json.dumps(self.old))
        self.new.setdefault("phase", "Pending")
        self.new.setdefault("conditions", [])

    @property
    def phase(self) -> str:
        return self.new["phase"]

    def condition(self, type_: str, status: bool | str, reason: str, message: str) -> None:
        before = get_condition(self.new["conditions"], type_)
        self.new["conditions"] = set_condition(
            self.new["conditions"], type_, status, reason, message, self.generation, self.now
        )
        after = get_condition(self.new["conditions"], type_)
        if not before or before.get("status") != after["status"]:
            if after["status"] == "True" or before:
                kind = "Warning" if type_ in WARNING_CONDITIONS and after["status"] == "True" else "Normal"
                # "Trained: ..." when a condition becomes true, its reason ("ScaledDown") otherwise.
                event_reason = type_ if after["status"] == "True" else reason
                self.events.append((kind, event_reason, f"{type_}={after['status']}: {message}"))

    def transition(self, to: str, message: str) -> None:
        frm = self.phase
        if frm == to:
            return
        self.transitions.append((frm, to))
        self.new["phase"] = to
        self.new["message"] = message
        self.new["phaseStartTime"] = self.now
        if to in TERMINAL:
            self.new["completionTime"] = self.now
        self.events.append(("Warning" if to == "Failed" else "Normal", to, f"{frm} -> {to}: {message}"))

    def changed(self) -> bool:
        return self.new != self.old


class Reconciler:
    def __init__(self, client: KubeClient, config: OperatorConfig, backends: Backends, events: EventSink):
        self.client = client
        self.config = config
        self.backends = backends  # per job: spec.training.backend, else the operator's default
        self.events = events

    # ----------------------------------------------------------------------------------------
    async def reconcile(self, namespace: str, name: str) -> str | None:
        """Passes until the phase stops changing; returns the phase (None when the job is gone)."""
        body = await self.client.get(PRUNINGJOBS, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None
        meta = body["metadata"]
        key = f"{namespace}/{name}"
        for _ in range(MAX_PASSES):
            draft = StatusDraft(old=dict(body.get("status") or {}), generation=meta.get("generation"), now=now_iso())
            draft.new["observedGeneration"] = meta.get("generation", draft.new.get("observedGeneration"))
            if draft.phase not in TERMINAL:
                try:
                    await self._step(body, draft)
                except Failure as failure:
                    await self._fail(body, draft, failure)
                except Blocked as blocked:
                    self._block(draft, blocked)
            await self._write(body, draft)  # the new phase is stored before it is acted on
            metrics.observe_job(key, draft.phase)
            if not draft.transitions or draft.phase in TERMINAL:
                break
            fresh = await self.client.get(PRUNINGJOBS, namespace, name)  # spec.suspend may have moved
            if fresh is None or fresh["metadata"].get("deletionTimestamp"):
                return None
            body, meta = fresh, fresh["metadata"]
        return draft.phase

    def _block(self, draft: StatusDraft, blocked: Blocked) -> None:
        draft.condition("Blocked", True, blocked.reason, blocked.message)
        draft.condition("Ready", False, blocked.reason, blocked.message)
        retry = parse_time(draft.now)
        if retry is not None:
            draft.new["retryAfter"] = now_iso(retry + dt.timedelta(seconds=BLOCKED_RETRY_SECONDS))
        log.warning("blocked in %s: %s", draft.phase, blocked)

    async def _write(self, body: dict[str, Any], draft: StatusDraft) -> None:
        meta = body["metadata"]
        if draft.changed():
            await self.client.patch(PRUNINGJOBS, meta["namespace"], meta["name"], {"status": draft.new}, sub="status")
        for frm, to in draft.transitions:
            metrics.TRANSITIONS.labels(from_phase=frm, to_phase=to).inc()
            started = parse_time(draft.old.get("phaseStartTime")) if frm == draft.old.get("phase") else None
            now = parse_time(draft.now)
            if started and now:
                metrics.PHASE_DURATION.labels(phase=frm).observe(max(0.0, (now - started).total_seconds()))
            log.info("phase %s -> %s", frm, to, extra={"job": meta["name"], "namespace": meta["namespace"]})
        for kind, reason, message in draft.events:
            try:
                self.events(body, kind, reason, message)
            except Exception:  # events are best effort
                log.warning("could not post event %s", reason)

    async def _fail(self, body: dict[str, Any], draft: StatusDraft, failure: Failure) -> None:
        draft.condition("Failed", True, failure.reason, failure.message)
        draft.condition("Ready", False, failure.reason, failure.message)
        draft.transition("Failed", f"{failure.reason}: {failure.message}")
        # Free the GPUs: samplers scale to zero, unfinished Jobs and the training job are
        # suspended (their objects stay for inspection; deleting the PruningJob removes them).
        ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
        names = Names(name, int(draft.new.get("round") or 1))
        for role in ("reference", "pruned"):
            await self._scale(ns, names.sampler(role), 0)
        for job_name in (names.sample_job, names.eval_job):
            job = await self.client.get(JOBS, ns, job_name)
            if job is not None and job_state(job)[0] == "Running" and not (job.get("spec") or {}).get("suspend"):
                await self.client.patch(JOBS, ns, job_name, {"spec": {"suspend": True}})
        backend = self.backends.get(chosen_backend({**body, "status": draft.new}))
        train = await self.client.get(backend.resource, ns, names.train)
        if train is not None and backend.state(train).state not in ("Succeeded", "Failed"):
            patch = backend.suspend_patch(train, True)
            if patch:
                await self.client.patch(backend.resource, ns, names.train, patch)

    # ----------------------------------------------------------------------------------------
    async def _step(self, body: dict[str, Any], draft: StatusDraft) -> None:
        spec = apply_operator_defaults(validate(body), self.config)
        meta = body["metadata"]
        ctx = JobContext(
            name=meta["name"], namespace=meta["namespace"], uid=meta.get("uid", ""), spec=spec,
            job_backoff_limit=self.config.job_backoff_limit,
            train_backoff_limit=self.config.train_backoff_limit,
            startup_probe_seconds=self.config.startup_probe_seconds,
            progress_deadline_seconds=self.config.startup_probe_seconds + 600,
            queue_name=(meta.get("labels") or {}).get(LABEL_KUEUE_QUEUE) or None,
            round=int(draft.new.setdefault("round", 1)),
        )
        digest = spec_hash(body.get("spec") or {})
        # Only a real spec write bumps metadata.generation; defaults a CRD upgrade adds on read
        # do not, so they never count as an edit.
        edited = meta.get("generation") != draft.old.get("observedGeneration")
        if edited and draft.new.get("specHash") and draft.new["specHash"] != digest:
            raise Failure("SpecChanged", "spec changed mid-run; only spec.suspend may change "
                                         "(the CRD rejects such edits; create a new PruningJob)")
        draft.new["specHash"] = digest
        backend = await self._backend(spec, draft)
        draft.new.setdefault("startTime", draft.now)
        draft.new.setdefault("children", {})
        draft.new["artifacts"] = {**artifacts(ctx.storage_uri), **(draft.new.get("artifacts") or {})}

        try:
            cm = config_map(ctx)
        except ValueError as exc:
            raise Failure("InvalidSpec", f"spec.training.deepspeed: {exc}") from None
        blocked = is_true(draft.new["conditions"], "Blocked")
        if blocked and (parse_time(draft.new.get("retryAfter")) or _EPOCH) > (parse_time(draft.now) or _EPOCH):
            return  # a refused create is retried every BLOCKED_RETRY_SECONDS, not on every pass
        await self._ensure(CONFIGMAPS, cm, draft)

        suspended = bool(spec.suspend)
        if bool(draft.new.get("suspended", False)) != suspended:
            draft.new["suspended"] = suspended
            msg = "spec.suspend is true: samplers scaled to zero, Jobs suspended" if suspended else "resumed"
            draft.condition("Suspended", suspended, "Suspended" if suspended else "Resumed", msg)

        if draft.phase == "Pending":
            draft.transition("Sampling", "spec accepted; starting the reference sampler")
        elif draft.phase == "Sampling":
            await self._sampling(ctx, draft, suspended)
        elif draft.phase == "Training":
            await self._training(ctx, draft, suspended, backend)
        elif draft.phase == "Evaluating":
            await self._evaluating(ctx, draft, suspended)
        if blocked:
            draft.condition("Blocked", False, "Retried", "no create was refused on the last attempt")
            draft.new.pop("retryAfter", None)
        if draft.phase not in TERMINAL:
            draft.condition("Ready", False, draft.phase, f"in phase {draft.phase}")

    # ----------------------------------------------------------------------------------------
    async def _backend(self, spec: Any, draft: StatusDraft) -> TrainingBackend:
        """The job's training backend; fails the job when the cluster does not serve its API
        (checked before sampling starts, so no GPU time is spent on a job that cannot train)."""
        requested = spec.training.backend or draft.new.get("trainingBackend")
        if draft.phase in ("Evaluating", *TERMINAL):
            return self.backends.get(requested)
        origin = "spec.training.backend" if spec.training.backend else "status.trainingBackend"
        try:
            backend = await self.backends.for_job(requested, origin)
        except BackendMissing as exc:
            raise Failure(BackendMissing.reason, str(exc)) from None
        except ValueError as exc:  # an unknown operator default
            raise Failure("InvalidSpec", f"spec.training.backend: {exc}") from None
        draft.new["trainingBackend"] = backend.name
        return backend

    async def _sampling(self, ctx: JobContext, draft: StatusDraft, suspended: bool) -> None:
        job = await self._child(JOBS, ctx, ctx.names.sample_job)
        if job is None or job_state(job)[0] != "Succeeded":  # a finished phase never restarts its sampler
            ready = await self._sampler(ctx, draft, "reference", suspended)
            if not ready and job is None:
                return
            job = await self._job(ctx, draft, sample_job(ctx), suspended)
        state, reason, message = job_state(job)
        if state == "Failed":
            detail = await self._pod_failure(ctx, "sample")
            raise Failure("SamplingFailed", f"Job {ctx.names.sample_job}: {reason}: {message}{detail}")
        if state == "Succeeded":
            draft.condition("ReferenceSampled", True, "SamplingJobComplete",
                            f"reference samples and stats in {ctx.round_artifact('reference/')}")
            diagnostics = await self._last_message(ctx, "sample", parse_diagnostics)
            if diagnostics:
                draft.new["diagnostics"] = diagnostics
                draft.condition("ReferenceTruncated", *truncation_condition(diagnostics))
            draft.new["artifacts"].update(artifacts(ctx.storage_uri, sampled=True, round_=ctx.round))
            # Training needs the GPUs the sampler holds.
            await self._scale(ctx.namespace, ctx.names.sampler("reference"), 0)
            draft.condition("SamplersReady", False, "ScaledDown", "reference sampler scaled to zero for training")
            draft.transition("Training", "reference sampling complete")

    async def _training(self, ctx: JobContext, draft: StatusDraft, suspended: bool,
                        backend: TrainingBackend) -> None:
        await self._scale(ctx.namespace, ctx.names.sampler("reference"), 0)
        res = backend.resource
        obj = await self._child(res, ctx, ctx.names.train)
        if obj is None:
            for extra_res, extra in backend.extras(ctx):
                await self._ensure(extra_res, extra, draft)
            try:
                manifest = backend.manifest(ctx, suspend=suspended)
            except ValueError as exc:  # a spec field this backend's API cannot carry
                raise Failure("InvalidSpec", str(exc)) from None
            await self._create(res, ctx.namespace, manifest, training=True)
            draft.new["children"]["training"] = f"{res.kind}/{ctx.names.train}"
            draft.events.append(("Normal", "Created", f"{res.kind} {ctx.names.train}"))
            return
        patch = None if ctx.queue_name else backend.suspend_patch(obj, suspended)  # Kueue owns suspend
        if patch:
            await self.client.patch(res, ctx.namespace, ctx.names.train, patch)
        st = backend.state(obj)
        if st.progress:
            draft.new["training"] = st.progress
        if st.state == "Failed":
            raise Failure("TrainingFailed", f"{res.kind} {ctx.names.train}: {st.reason}: {st.message}")
        if st.state == "Succeeded":
            draft.condition("Trained", True, "TrainingSucceeded", f"pruned model in {ctx.round_artifact('train/model/')}")
            draft.new["artifacts"].update(artifacts(ctx.storage_uri, sampled=True, trained=True, round_=ctx.round))
            draft.transition("Evaluating", "training complete; starting the pruned-model sampler")
        else:
            draft.condition("Trained", False, st.reason or st.state, st.message or f"{res.kind} is {st.state}")

    async def _evaluating(self, ctx: JobContext, draft: StatusDraft, suspended: bool) -> None:
        job = await self._child(JOBS, ctx, ctx.names.eval_job)
        if job is None or job_state(job)[0] != "Succeeded":
            ready = await self._sampler(ctx, draft, "pruned", suspended)
            if not ready and job is None:
                return
            job = await self._job(ctx, draft, eval_job(ctx), suspended)
        state, reason, message = job_state(job)
        if state == "Failed":
            detail = await self._pod_failure(ctx, "evaluate")
            raise Failure("EvaluationFailed", f"Job {ctx.names.eval_job}: {reason}: {message}{detail}")
        if state != "Succeeded":
            return
        results = await self._results(ctx)
        await self._scale(ctx.namespace, ctx.names.sampler("pruned"), 0)
        draft.condition("SamplersReady", False, "ScaledDown", "samplers scaled to zero")
        if results:
            draft.new["results"] = results
            draft.new["summary"] = dict(results.get("average") or {})
            draft.condition("Evaluated", True, "EvaluationComplete", _summary_text(draft.new["summary"]))
        else:
            draft.condition("Evaluated", True, "NoResults",
                            f"the evaluate container reported no results; see {ctx.round_artifact('report/')}")
        draft.new["artifacts"].update(artifacts(ctx.storage_uri, sampled=True, trained=True, evaluated=True,
                                                round_=ctx.round))
        if ctx.spec.rounds.count > 1:
            end_round(ctx, draft, results)
            return
        guard = guard_condition(results)
        if guard is not None:
            draft.condition("AccuracyGuardFailed", *guard)
        if guard is not None and guard[0]:  # rejected: the model is kept for inspection, not published
            draft.new["artifacts"]["rejectedModel"] = draft.new["artifacts"]["model"]
            draft.new["artifacts"]["model"] = None  # null removes the key in the status merge patch
            draft.condition("Ready", False, "AccuracyGuardFailed", guard[2])
            draft.transition("Succeeded", "evaluation complete; the accuracy guard rejected the pruned model")
            return
        draft.condition("Ready", True, "Succeeded", "pruned model evaluated")
        draft.transition("Succeeded", "evaluation complete")

    # ----------------------------------------------------------------------------------------
    async def _child(self, res: Any, ctx: JobContext, name: str) -> dict[str, Any] | None:
        """The child ``name`` if it exists and is this job's (see :func:`check_owner`)."""
        obj = await self.client.get(res, ctx.namespace, name)
        if obj is not None:
            check_owner(obj, ctx.uid, res.kind)
        return obj

    async def _create(self, res: Any, namespace: str, manifest: dict[str, Any], *, training: bool = False) -> bool:
        try:
            return await self.client.create(res, namespace, manifest)
        except ApiError as exc:
            reason = blocked_reason(exc.status, training)
            if reason is None:
                raise
            raise Blocked(reason, f"creating {manifest.get('kind', res.kind)} {manifest['metadata']['name']} "
                                  f"({res.api_version}): {exc}") from None

    async def _ensure(self, res: Any, manifest: dict[str, Any], draft: StatusDraft) -> dict[str, Any]:
        ns, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        uid = next((r.get("uid", "") for r in manifest["metadata"].get("ownerReferences") or []), "")
        obj = await self.client.get(res, ns, name)
        if obj is None:
            created = await self._create(res, ns, manifest)
            if created:
                draft.events.append(("Normal", "Created", f"{manifest['kind']} {name}"))
            obj = await self.client.get(res, ns, name) or manifest
        check_owner(obj, uid, manifest["kind"])
        return obj

    async def _scale(self, namespace: str, name: str, replicas: int) -> None:
        dep = await self.client.get(DEPLOYMENTS, namespace, name)
        if dep is not None and (dep.get("spec") or {}).get("replicas") != replicas:
            await self.client.patch(DEPLOYMENTS, namespace, name, {"spec": {"replicas": replicas}})

    async def _sampler(self, ctx: JobContext, draft: StatusDraft, role: str, suspended: bool) -> bool:
        """Ensure the sampler Deployment + Service; True when it serves. Raises on crash loops."""
        want = 0 if suspended else ctx.spec.sampling.sampler.replicas
        dep = await self._ensure(DEPLOYMENTS, sampler_deployment(ctx, role, replicas=want), draft)
        await self._ensure(SERVICES, sampler_service(ctx, role), draft)
        if self.config.sampler_network_policy:
            policy = sampler_network_policy(ctx, role, self.config.sampler_network_policy_allow_namespaces)
            await self._ensure(NETWORKPOLICIES, policy, draft)
        draft.new["children"][f"sampler-{role}"] = f"Deployment/{ctx.names.sampler(role)}"
        if (dep.get("spec") or {}).get("replicas") != want:
            await self.client.patch(DEPLOYMENTS, ctx.namespace, ctx.names.sampler(role), {"spec": {"replicas": want}})
            return False
        await self._check_sampler_health(ctx, role, dep)
        st = dep.get("status") or {}
        ready = not suspended and int(st.get("readyReplicas") or 0) >= 1
        if ready:
            draft.condition("SamplersReady", True, "SamplerReady",
                            f"{role} sampler serves {ctx.service_url(role)}")
        else:
            why = _deployment_problem(dep) or f"waiting for the {role} sampler to serve its model (/v1/models)"
            draft.condition("SamplersReady", False, "Suspended" if suspended else "SamplerStarting", why)
        return ready

    async def _check_sampler_health(self, ctx: JobContext, role: str, dep: dict[str, Any]) -> None:
        for cond in (dep.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
                raise Failure("SamplerFailed", f"Deployment {ctx.names.sampler(role)}: {cond.get('message', '')}")
        for pod in await self._pods(ctx, pod_selector(ctx, sampler_component(role))):
            problem = pod_problem(pod, self.config.crashloop_restarts)
            if problem:
                raise Failure("SamplerFailed", f"{role} sampler pod {pod['metadata'].get('name')}: {problem}")

    async def _pods(self, ctx: JobContext, selector: str) -> list[dict[str, Any]]:
        wanted = dict(part.split("=", 1) for part in selector.split(","))
        pods = await self.client.list(PODS, ctx.namespace, selector)
        return [p for p in pods
                if all(((p.get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in wanted.items())]

    async def _job(self, ctx: JobContext, draft: StatusDraft, manifest: dict[str, Any],
                   suspended: bool) -> dict[str, Any]:
        job = await self._ensure(JOBS, manifest, draft)
        name = manifest["metadata"]["name"]
        draft.new["children"][manifest["spec"]["template"]["metadata"]["labels"][LABEL_COMPONENT]] = f"Job/{name}"
        # Queued jobs: Kueue admits them by unsuspending; two controllers must not fight over it.
        if not ctx.queue_name and bool((job.get("spec") or {}).get("suspend", False)) != suspended:
            await self.client.patch(JOBS, ctx.namespace, name, {"spec": {"suspend": suspended}})
        return job

    async def _pod_failure(self, ctx: JobContext, component: str) -> str:
        """The last failed pod's termination message (the CLI's error, or the log tail)."""
        pods = await self._pods(ctx, pod_selector(ctx, component))
        failures = []
        for pod in pods:
            for cs in (pod.get("status") or {}).get("containerStatuses") or []:
                term = (cs.get("state") or {}).get("terminated") or {}
                if term.get("exitCode") not in (None, 0) and term.get("message"):
                    failures.append((term.get("finishedAt") or "", pod["metadata"].get("name", ""), term))
        if not failures:
            return ""
        _, pod_name, term = max(failures, key=lambda f: f[0])
        return f"; pod {pod_name} exited {term.get('exitCode')}: {failure_tail(term['message'])}"

    async def _results(self, ctx: JobContext) -> dict[str, Any] | None:
        return await self._last_message(ctx, "evaluate", parse_results)

    async def _last_message(self, ctx: JobContext, component: str, parse: Callable[[str], Any]) -> Any:
        """The newest successful ``component`` pod's termination message that ``parse`` reads."""
        pods = await self._pods(ctx, pod_selector(ctx, component))
        messages = []
        for pod in pods:
            for cs in (pod.get("status") or {}).get("containerStatuses") or []:
                term = (cs.get("state") or {}).get("terminated") or {}
                if term.get("exitCode") == 0 and term.get("message"):
                    messages.append((term.get("finishedAt") or "", term["message"]))
        for _, message in sorted(messages, reverse=True):
            parsed = parse(message)
            if parsed:
                return parsed
        return None


# --------------------------------------------------------------------------------------------
def pod_selector(ctx: JobContext, component: str) -> str:
    """The label selector of this round's ``component`` pods."""
    labels = {LABEL_JOB: ctx.name, LABEL_COMPONENT: component, **round_labels(ctx)}
    return ",".join(f"{k}={v}" for k, v in labels.items())


def end_round(ctx: JobContext, draft: StatusDraft, results: dict[str, Any] | None) -> None:
    """After round ``ctx.round`` is evaluated (``spec.rounds.count > 1``): record it in
    ``status.rounds``, then start the next round (back to Sampling, ``status.round`` + 1) or
    finish, publishing the last accepted round's model and figures (:mod:`o1pruner.rounds`)."""
    n, spec = ctx.round, ctx.spec.rounds
    history = [r for r in draft.new.get("rounds") or [] if int(r.get("round", 0)) < n]
    entry = {**round_entry(n, results, history[-1].get("prunedMeanLength") if history else None),
             "model": artifacts(ctx.storage_uri, trained=True, round_=n)["model"]}
    draft.new["rounds"] = [*history, entry]
    guard = guard_condition(results)
    if guard is not None:
        draft.condition("AccuracyGuardFailed", *guard)
    reason = stop_reason(entry, spec.count, spec.min_length_gain)
    if reason is None:
        draft.new["round"] = n + 1
        for type_ in ("ReferenceSampled", "Trained", "Evaluated"):
            draft.condition(type_, False, "NextRound", f"round {n + 1} started")
        draft.transition("Sampling", f"round {n} accepted (mean length {100 * entry['lengthGain']:.1f} % "
                                     f"shorter); round {n + 1} samples its pruned model")
        return
    result = result_round(draft.new["rounds"])
    draft.new["resultRound"] = result
    if not entry["accepted"]:
        draft.new["artifacts"]["rejectedModel"] = entry["model"]
    if result is None:
        draft.new["artifacts"]["model"] = None  # null removes the key in the status merge patch
        draft.condition("Ready", False, "NoRoundAccepted", f"no round accepted: {reason}")
        draft.transition("Succeeded", f"no round accepted: {reason}")
        return
    chosen = next(r for r in draft.new["rounds"] if r["round"] == result)
    draft.new["artifacts"]["model"] = chosen["model"]
    if chosen.get("results"):
        draft.new["results"] = chosen["results"]
        draft.new["summary"] = dict(chosen["results"].get("average") or {})
    draft.condition("Ready", True, "Succeeded", f"round {result}'s pruned model published; {reason}")
    draft.transition("Succeeded", f"round {result}'s pruned model published; {reason}")


def check_owner(obj: dict[str, Any], uid: str, kind: str) -> None:
    """An existing child with the expected name is adopted only if this PruningJob (``uid``) owns
    it: a leftover ``<job>-sample`` Job of an earlier job with the same name would otherwise mark
    sampling done at once. Raises :class:`Blocked` (reason ``ChildConflict``)."""
    if not uid:
        return
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    if any(ref.get("uid") == uid for ref in refs):
        return
    name = (obj.get("metadata") or {}).get("name", "")
    owners = ", ".join(f"{r.get('kind')}/{r.get('name')} uid {r.get('uid')}" for r in refs) or "no owner"
    raise Blocked("ChildConflict", f"{kind} {name} already exists and is not this PruningJob's ({owners}); "
                                   "delete it (or use another job name) and the job continues")


def job_state(job: dict[str, Any]) -> tuple[str, str, str]:
    """(Succeeded | Failed | Running, reason, message) of a batch/v1 Job."""
    status = job.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "Failed":
            return "Failed", str(cond.get("reason", "Failed")), str(cond.get("message", ""))
        if cond.get("type") == "Complete":
            return "Succeeded", "Complete", ""
    if int(status.get("succeeded") or 0) >= 1:
        return "Succeeded", "Complete", ""
    return "Running", "", ""


def failure_tail(message: str, lines: int = 3, limit: int = 600) -> str:
    """The last non-empty lines of a termination message (the error, after any traceback)."""
    kept = [line.strip() for line in message.strip().splitlines() if line.strip()][-lines:]
    text = " | ".join(kept)
    return text if len(text) <= limit else "..." + text[-limit:]


def pod_problem(pod: dict[str, Any], crashloop_restarts: int) -> str | None:
    """A reason to give up on a pod (crash loop, unusable image), or None."""
    status = pod.get("status") or {}
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        restarts = int(cs.get("restartCount") or 0)
        last = ((cs.get("lastState") or {}).get("terminated") or {})
        detail = f" (last exit {last.get('exitCode')}: {last.get('reason', '')})" if last else ""
        if reason == "CrashLoopBackOff" and restarts >= crashloop_restarts:
            return f"container {cs.get('name')} CrashLoopBackOff after {restarts} restarts{detail}"
        if reason in ("InvalidImageName", "ErrImageNeverPull"):
            return f"container {cs.get('name')}: {reason}: {waiting.get('message', '')}"
    return None


def _deployment_problem(dep: dict[str, Any]) -> str | None:
    for cond in (dep.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return f"{cond.get('reason', '')}: {cond.get('message', '')}"
    return None


def _summary_text(summary: dict[str, Any]) -> str:
    parts = [f"{k}={summary[k]:.4g}" for k in ("baseAccuracy", "prunedAccuracy", "lengthReduction", "aes")
             if isinstance(summary.get(k), (int, float))]
    return ", ".join(parts) or "evaluated"
