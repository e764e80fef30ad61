"""``o1pruner-operator``: run the kopf operator with config from the environment."""

from __future__ import annotations

import logging

import kopf

from o1pruner_operator import metrics
from o1pruner_operator.handlers import build_registry
from o1pruner_operator.settings import OperatorConfig


def main() -> None:
    config = OperatorConfig.from_env()
    fmt = {"json": kopf.LogFormat.JSON, "plain": kopf.LogFormat.PLAIN, "full": kopf.LogFormat.FULL}
    kopf.configure(log_format=fmt.get(config.log_format, kopf.LogFormat.JSON),
                   verbose=config.log_level == "DEBUG")
    logging.getLogger().setLevel(getattr(logging, config.log_level, logging.INFO))
    metrics.serve(config.metrics_port)
    kopf.run(
        registry=build_registry(config),
        clusterwide=config.clusterwide,
        namespaces=list(config.namespaces),
        standalone=not config.peering,
        peering_name=config.peering or None,
        liveness_endpoint=config.liveness_endpoint or None,
    )


if __name__ == "__main__":
    main()
