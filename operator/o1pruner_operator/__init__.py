"""o1pruner-operator: the kopf operator that runs PruningJobs (see docs/operator.md).

Modules: ``settings`` (env config, kopf settings), ``handlers`` (kopf wiring), ``reconcile``
(the level-triggered state machine), ``manifests`` (pure child builders), ``backends``
(PyTorchJob behind a small interface), ``kube`` (REST client for children), ``status``,
``metrics``, ``rbac`` (the exact API permissions), ``main`` (entry point). Never imports torch.
"""
