"""Pure manifest builders: ``(JobContext, ...) -> dict``. No I/O, no kopf, unit-tested."""

from o1pruner_operator.manifests.common import JobContext, Names, child_labels, owner_reference, \
    pod_security_context, container_security_context
from o1pruner_operator.manifests.configmap import config_map
from o1pruner_operator.manifests.jobs import eval_job, sample_job
from o1pruner_operator.manifests.sampler import sampler_deployment, sampler_network_policy, sampler_service
from o1pruner_operator.manifests.pytorchjob import pytorch_job

__all__ = [
    "JobContext", "Names", "child_labels", "owner_reference", "pod_security_context",
    "container_security_context", "config_map", "eval_job", "sample_job", "sampler_deployment",
    "sampler_network_policy", "sampler_service", "pytorch_job",
]
