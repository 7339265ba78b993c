"""Hook specifications: what a harness plugin may implement.

A plugin is a module (or object) with functions marked ``@hookimpl`` whose names are the hooks below. It is found
through the ``harness`` entry-point group of an installed distribution, exactly as the built-in plugins are:

.. code-block:: toml

    [project.entry-points.harness]
    my_plugins = "my_package.plugins"

The ``harness_register_*`` hooks each return a list of plugin objects of one kind. Every object is checked against
its kind's contract (the Protocols in :mod:`harness.registry.contracts`) when the registry is built; an object that
breaks it stops the run with one line naming the providing distribution and what is missing. None of the hooks is
``firstresult``: every implementation is called and the lists are joined; two objects of one kind with the same
``name`` are an error. The observer hooks (``harness_run_start``, ``harness_attack_result``, ``harness_run_end``)
return nothing; their return values are ignored. ``docs/plugins.md`` walks through writing a plugin package.
"""

from __future__ import annotations

from typing import Any

import pluggy

from harness.registry.contracts import (
    Architecture,
    AttackPlugin,
    CorruptionPlugin,
    DatasetPlugin,
    DefencePlugin,
    ModelPlugin,
)

hookspec = pluggy.HookspecMarker("harness")
hookimpl = pluggy.HookimplMarker("harness")


@hookspec
def harness_register_datasets() -> list[DatasetPlugin]:
    """Return data-set plugins.

    :return: objects meeting :class:`~harness.registry.contracts.DatasetPlugin`: ``name``, ``description``,
        ``identifiers`` ("from_source" ids are replaced by keyed hashes by the core before anything else sees them;
        "synthetic" ids, which name no person, are kept), a ``Params`` dataclass (the plan's ``dataset:`` keys) and
        ``load(params, context) -> DatasetBundle``.
    """


@hookspec
def harness_register_architectures() -> list[Architecture]:
    """Return network architectures that model plugins can build by name (``model.architecture`` in a plan).

    :return: objects meeting :class:`~harness.registry.contracts.Architecture`: ``name``, ``description`` and
        ``build(in_channels, num_classes, image_size) -> nn.Module`` returning logits.
    """


@hookspec
def harness_register_models() -> list[ModelPlugin]:
    """Return model providers: plugins that train or load the model under test (``model.plugin`` in a plan).

    :return: objects meeting :class:`~harness.registry.contracts.ModelPlugin`: ``name``, ``description``, a
        ``Params`` dataclass and ``provide(params, context) -> ModelBundle`` (an ``nn.Module`` from [0,1] images
        to logits, with its provenance).
    """


@hookspec
def harness_register_attacks() -> list[AttackPlugin]:
    """Return attack plugins (``attacks[].attack`` in a plan).

    :return: objects meeting :class:`~harness.registry.contracts.AttackPlugin`: ``name``, ``description``,
        ``norm`` ("linf" or "l2"), ``kind`` ("fixed_epsilon" or "minimal"), a ``Params`` dataclass and
        ``run(model, images, labels, epsilons, params) -> AttackOutput``. The core checks every adversarial
        against its bound and re-classifies it with the float32 model before it counts.
    """


@hookspec
def harness_register_defences() -> list[DefencePlugin]:
    """Return defences: plugins that fine-tune a copy of the naive model (``defence.plugin`` in a plan).

    :return: objects meeting :class:`~harness.registry.contracts.DefencePlugin`: ``name``, ``description``, a
        ``Params`` dataclass and ``harden(model, params, context) -> ModelBundle``.
    """


@hookspec
def harness_register_corruptions() -> list[CorruptionPlugin]:
    """Return corruption plugins: natural corruptions or acquisition shifts of the test images
    (``corruptions[].corruption`` in a plan).

    :return: objects meeting :class:`~harness.registry.contracts.CorruptionPlugin`: ``name``, ``description``,
        ``modality`` ("CT", "MRI" or "any"), ``requires_unit`` (the native unit its parameter is in, or None),
        ``parameter`` and ``unit`` (the ``Params`` field the severities set, and its unit), ``severities`` (exactly
        five ``Severity(level, name, value)``, levels 1-5 from least to most harmful, values strictly monotone:
        the core checks this at registration), a ``Params`` dataclass, ``params_for(level, base)`` and
        ``apply(images, indices, params, context) -> images`` (new [0,1] float32 images; image i depends only on
        the seed, the plugin's name, ``indices[i]``, the image and the params).
    """


@hookspec
def harness_run_start(plan: Any, run_dir: str) -> None:
    """Called once when a run starts, after the plan is resolved and the run directory exists (rank 0 only).

    :param plan: the validated :class:`~harness.plan.schema.Plan` (typed ``Any`` here: the plan layer sits above
        the registry, and no Protocol describes it).
    :param run_dir: the run directory, as a string.
    """


@hookspec
def harness_attack_result(plan: Any, model_role: str, attack_id: str, epsilon: float | None,
                          robust_accuracy: float | None) -> None:
    """Called after each attack × epsilon result is computed (rank 0 only), e.g. for live dashboards.

    :param plan: the validated plan.
    :param model_role: "naive" or "hardened".
    :param attack_id: the attack's id in the plan.
    :param epsilon: the epsilon on [0,1] pixels.
    :param robust_accuracy: robust accuracy on the test split at that epsilon (None when undefined).
    """


@hookspec
def harness_run_end(plan: Any, run_dir: str, results: Any) -> None:
    """Called once when a run has finished and its results are written (rank 0 only).

    :param plan: the validated plan.
    :param run_dir: the run directory, as a string.
    :param results: the run's :class:`harness.RunResults` (typed: ``results.verdict``, ``results.document``,
        ``results.record`` for the manifest); ``results.raw`` is the documented JSON form, the content of
        results.json. Typed ``Any`` here: the results layer sits above the registry.
    """
