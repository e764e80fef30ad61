"""The exact API permissions the operator uses (the Helm chart's ClusterRole renders these).

``tests/operator/test_rbac.py`` records every request the operator makes against the emulator
during the full lifecycle and checks each is covered here, and that each rule here is used.
"""

from __future__ import annotations

from typing import Any

REQUIRED_RULES: list[dict[str, Any]] = [
    # The custom resource: kopf lists/watches it (and patches away the finalizer an older
    # operator added); the reconciler re-reads it (get) and writes the status subresource.
    {"apiGroups": ["o1pruner.dev"], "resources": ["pruningjobs"], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": ["o1pruner.dev"], "resources": ["pruningjobs/status"], "verbs": ["get", "patch"]},
    # Children carry ownerReferences with blockOwnerDeletion: true; under the
    # OwnerReferencesPermissionEnforcement admission plugin (on by default in OpenShift) setting
    # it needs update on the owner's finalizers subresource, else every child create is a 403.
    {"apiGroups": ["o1pruner.dev"], "resources": ["pruningjobs/finalizers"], "verbs": ["update"]},
    # kopf: waits for the CRD to be served, and (cluster-wide) lists/watches namespaces.
    {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["list", "watch"]},
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
    # Events for every transition (and kopf's own warnings).
    {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create"]},
    # Children. list/watch only where kopf watches them (label-selected, see watches.py): a
    # change of a Job, Deployment or the training job wakes its PruningJob's reconciler.
    {"apiGroups": [""], "resources": ["configmaps", "services"], "verbs": ["get", "create", "delete"]},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
    # Training backends: Kubeflow Trainer v2 TrainJob, training-operator v1 PyTorchJob (both
    # watched, whichever the cluster serves); the `job` backend uses a batch Job and a headless
    # Service (above).
    {"apiGroups": ["trainer.kubeflow.org"], "resources": ["trainjobs"],
     "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
    {"apiGroups": ["kubeflow.org"], "resources": ["pytorchjobs"],
     "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
    # The optional sampler NetworkPolicy (O1PRUNER_SAMPLER_NETWORK_POLICY).
    {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["get", "create", "delete"]},
    # Sampler crash loops and the eval container's termination message (list); failing pods
    # wake the reconciler (watch).
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]},
]

#: Permissions only an admission plugin checks (no request of the operator uses them):
#: OwnerReferencesPermissionEnforcement, for blockOwnerDeletion on the children.
ADMISSION_ONLY: set[tuple[str, str, str]] = {("o1pruner.dev", "pruningjobs/finalizers", "update")}

#: Verbs kopf itself uses that a short emulator run may not exercise (documented, allowed unused),
#: and the admission-only permissions above.
KOPF_ONLY: set[tuple[str, str, str]] = ADMISSION_ONLY | {
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    ("", "namespaces", "list"),
    ("", "namespaces", "watch"),
    ("events.k8s.io", "events", "create"),
    ("o1pruner.dev", "pruningjobs/status", "get"),
    # kopf removes the o1pruner.dev/finalizer older operators added (no handler requires one).
    ("o1pruner.dev", "pruningjobs", "patch"),
}


#: Resources only one training backend uses; the others' runs leave these rules unused.
BACKEND_ONLY: dict[str, tuple[str, str]] = {
    "trainjob": ("trainer.kubeflow.org", "trainjobs"),
    "pytorchjob": ("kubeflow.org", "pytorchjobs"),
}


def other_backends(backend: str) -> set[tuple[str, str, str]]:
    """Granted (group, resource, verb) that only training backends other than ``backend`` use."""
    return {(g, r, v) for g, r, v in expand()
            if any((g, r) == gr for name, gr in BACKEND_ONLY.items() if name != backend)}


def covers(group: str, resource: str, verb: str, rules: list[dict[str, Any]] | None = None) -> bool:
    for rule in REQUIRED_RULES if rules is None else rules:
        if group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]:
            return True
    return False


def expand(rules: list[dict[str, Any]] | None = None) -> set[tuple[str, str, str]]:
    return {
        (g, r, v)
        for rule in (REQUIRED_RULES if rules is None else rules)
        for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]
    }
