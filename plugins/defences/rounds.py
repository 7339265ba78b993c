"""The round loop every adversarial fine-tuning defence shares.

Round 0 is the naive model. Each later round trains one epoch on adversarial batches, then is scored on the
VALIDATION split only (clean accuracy and white-box L∞ PGD robust accuracy against the model as it is after that
round). The best round (val robust accuracy, ties by val clean accuracy, then the earlier round) is what is
returned and saved; a checkpoint after every round lets an interrupted run continue exactly where it stopped.

Under `torchrun` (a process group of N > 1 ranks) the rounds train with DistributedDataParallel: each rank trains
on its part of every global batch, gradients are averaged, rank 0's weights and buffers are broadcast after every
round, validation is sharded by batch and its counts summed, so every rank makes the same selection; rank 0 writes
the checkpoints (with every rank's RNG states) and the selected weights. Deterministic for a given N, but not
bit-identical to one process (BatchNorm statistics are per rank).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from harness.attacks.sweep import batch_seed
from harness.data import batches as batching
from harness.errors import DataError, ModelError
from harness.registry.contracts import DefenceContext, ModelBundle
from harness.run import distributed
from harness.storage.atomic import write_bytes_atomic
from harness_plugins.defences import parallel, torch_attacks
from harness_plugins.defences.checkpoint import (
    GENERATORS,
    SELECTED_NAME,
    Best,
    CheckpointStore,
    LoopState,
    fingerprint,
    labels_sha256,
)
from harness_plugins.defences.losses import BatchLoss
from harness_plugins.defences.precision import Precision, choose_precision
from harness_plugins.defences.settings import CommonParams
from harness_plugins.models.training import augment_batch, isolated_rng, iterate_batches, make_optimizer, torch_threads
from harness_plugins.models.weights import cpu_state_dict, sha256_bytes, state_dict_bytes, state_dict_sha256

# Bump whenever a change here could change the hardened weights for the same inputs (invalidates checkpoints).
DEFENCE_CODE_VERSION = 1
NAIVE_PROVENANCE_KEYS = ("source", "architecture", "weights_sha256", "state_dict_sha256", "cache_key",
                         "weights_path", "plugin")


@dataclass(frozen=True)
class RoundPlan:
    """One training round: its number (1-based), curriculum stage (1-based) and training epsilon."""

    round: int
    stage: int
    epsilon: float


@dataclass(frozen=True)
class TrainingSpec:
    """What one defence hands the shared loop: schedule, batch loss, common settings and selection epsilon."""

    defence: str
    schedule: list[RoundPlan]
    batch_loss: BatchLoss
    settings: CommonParams
    selection_epsilon: float
    params: dict[str, Any]  # verbatim, for provenance and the checkpoint fingerprint
    # how a round is scored on val, (clean, robust) accuracy: None is `validate` (L∞ PGD at selection_epsilon)
    score: Callable[..., tuple[float, float]] | None = None
    selection: dict[str, Any] | None = None  # the provenance's description of `score` (None: the PGD one)


def schedule_from_stages(stages: Sequence[tuple[float, int]]) -> list[RoundPlan]:
    """Rounds 1..N from (epsilon, rounds) stages, in order."""
    plans: list[RoundPlan] = []
    for stage, (epsilon, rounds) in enumerate(stages, start=1):
        for _ in range(rounds):
            plans.append(RoundPlan(len(plans) + 1, stage, float(epsilon)))
    return plans


# --------------------------------------------------------------------------- one round


def train_round(model: nn.Module, train: Any, spec: TrainingSpec, epsilon: float,
                optimizer: torch.optim.Optimizer, generators: dict[str, torch.Generator], precision: Precision,
                device: torch.device) -> tuple[float, float]:
    """One epoch over the shuffled train split; mean loss and accuracy on the (adversarial) inputs trained on.

    `model` may be a DDP wrapper: each rank then trains on its part of every batch (parallel.train_batches)."""
    settings = spec.settings
    order = torch.randperm(len(train), generator=generators["shuffle"])
    loss_sum, correct, n = 0.0, 0, 0
    for images, labels in parallel.train_batches(train, settings.batch_size, order):
        images, labels = images.to(device), labels.to(device)
        if settings.augment is not None:
            images = augment_batch(images, settings.augment, generators["augment"])
        optimizer.zero_grad(set_to_none=True)
        loss, logits = spec.batch_loss(model, images, labels, epsilon, generators["attack"], precision)
        precision.step(loss, optimizer)
        loss_sum += float(loss.detach()) * len(labels)
        correct += int((logits.argmax(1) == labels).sum())
        n += len(labels)
    model.eval()
    if distributed.is_distributed():
        loss_sum, correct, n = distributed.all_sum([loss_sum, correct, n])
    return loss_sum / max(n, 1), correct / max(n, 1)


def validate(model: nn.Module, val: Any, epsilon: float, settings: CommonParams, seed: int,
             device: torch.device) -> tuple[float, float]:
    """Clean and PGD-robust accuracy on the validation split, attacking `model` itself (float32, eval mode).

    The random starts come from one fixed seed, so every round faces the same draws."""
    if distributed.is_distributed():
        return _validate_sharded(model, val, epsilon, settings, seed, device)
    generator = torch.Generator().manual_seed(batch_seed(seed, "defence-selection"))
    clean, robust, n = 0, 0, 0
    for images, labels in iterate_batches(val, settings.batch_size):
        batch_clean, batch_robust = _score_batch(model, images, labels, epsilon, settings, generator, device)
        clean, robust, n = clean + batch_clean, robust + batch_robust, n + len(labels)
    return clean / max(n, 1), robust / max(n, 1)


def _validate_sharded(model: nn.Module, val: Any, epsilon: float, settings: CommonParams, seed: int,
                      device: torch.device) -> tuple[float, float]:
    """`validate` under torchrun: rank r scores val batches r, r+N, ... (random starts seeded per batch, so the
    numbers do not depend on N) and the counts are summed over ranks: every rank gets the same two numbers."""
    clean, robust, n = 0, 0, 0
    size = settings.batch_size
    for index in batching.shard_batches(len(val), size, distributed.rank(), distributed.world_size()):
        rows = batching.batch_range(index, len(val), size)
        images, labels = next(iterate_batches(val, len(rows), torch.arange(rows.start, rows.stop)))
        generator = torch.Generator().manual_seed(batch_seed(seed, "defence-selection", index))
        batch_clean, batch_robust = _score_batch(model, images, labels, epsilon, settings, generator, device)
        clean, robust, n = clean + batch_clean, robust + batch_robust, n + len(labels)
    clean, robust, n = distributed.all_sum([clean, robust, n])
    return clean / max(n, 1), robust / max(n, 1)


def _score_batch(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epsilon: float,
                 settings: CommonParams, generator: torch.Generator, device: torch.device) -> tuple[int, int]:
    """How many images of one batch are classified correctly, clean and under the selection PGD."""
    images, labels = images.to(device), labels.to(device)
    clean_ok = torch_attacks.predict(model, images) == labels
    adv = torch_attacks.linf_pgd(model, images, torch_attacks.cross_entropy(labels), epsilon,
                                 settings.selection_steps, settings.selection_rel_stepsize * epsilon,
                                 "uniform", generator)
    robust_ok = clean_ok & (torch_attacks.predict(model, adv) == labels)
    return int(clean_ok.sum()), int(robust_ok.sum())


# --------------------------------------------------------------------------- the loop


def run_defence(spec: TrainingSpec, naive: ModelBundle, context: DefenceContext) -> ModelBundle:
    """Harden a copy of `naive` round by round; return the best validation round's model with provenance."""
    settings = spec.settings
    seed = context.seed if settings.seed is None else settings.seed
    train, val = _splits(context, spec.defence)
    precision = choose_precision(settings.mixed_precision, context.device)
    if settings.mixed_precision and not precision.enabled:
        context.log(f"{spec.defence}: mixed precision is CUDA-only; training in float32 on {context.device}")
    started = time.perf_counter()
    try:
        with torch_threads(settings.num_threads), isolated_rng(seed, context.device):
            model = _trainable_copy(naive.module, context.device)
            distributed.broadcast_module(model)  # under torchrun: every rank starts from rank 0's naive weights
            optimizer = make_optimizer(model, settings)  # type: ignore[arg-type]  # same fields as TrainParams
            generators = _generators(seed)
            store = CheckpointStore(context.checkpoint_dir, fingerprint(_material(spec, naive, context, seed)),
                                    context.log)
            state = _resume_or_start(store, spec, model, optimizer, precision, generators, val, seed, context)
            _loop(state, store, spec, model, optimizer, precision, train, val, seed, context)
            model.load_state_dict(state.best.state)
            distributed.broadcast_module(model)  # every rank ends with rank 0's selected weights
        model.eval()
        weights = state_dict_bytes(state.best.state)
        ranks_sha256 = _agreed_weights(spec, weights)
    except Exception as exc:  # ranks may be inside different collectives: exit now, torchrun stops the rest
        if distributed.is_distributed():
            distributed.mark_desynced(exc)
        raise
    weights_path = context.checkpoint_dir / SELECTED_NAME
    if distributed.is_main():
        write_bytes_atomic(weights_path, weights)
    context.log(_describe_selection(spec, state))
    provenance = _provenance(spec, naive, state, precision, seed, weights, str(weights_path), len(val), context)
    if ranks_sha256 is not None:
        provenance["distributed"] = {"world_size": distributed.world_size(), "backend": distributed.backend(),
                                     "data_parallel": "DistributedDataParallel, each rank a part of every batch",
                                     "rank_weights_sha256": ranks_sha256}
    provenance["training_seconds"] = round(time.perf_counter() - started, 3)
    return ModelBundle(module=model, provenance=provenance)


def _generators(seed: int) -> dict[str, torch.Generator]:
    """The loop's RNGs: the shuffle is shared by every rank; under torchrun each rank draws its own augmentation
    and attack starts."""
    def part(name: str) -> tuple[object, ...]:
        return (name,) if name == "shuffle" or not distributed.is_distributed() else (name, distributed.rank())

    return {name: torch.Generator().manual_seed(batch_seed(seed, "defence", *part(name))) for name in GENERATORS}


def _agreed_weights(spec: TrainingSpec, weights: bytes) -> list[str] | None:
    """Under torchrun: every rank's sha256 of the selected weights, which must all be equal (None otherwise)."""
    if not distributed.is_distributed():
        return None
    hashes = distributed.all_gather(sha256_bytes(weights))
    if len(set(hashes)) != 1:
        raise ModelError(f"{spec.defence}: the ranks ended with different hardened weights ({', '.join(hashes)})")
    return hashes


def _resume_or_start(store: CheckpointStore, spec: TrainingSpec, model: nn.Module,
                     optimizer: torch.optim.Optimizer, precision: Precision, generators: dict[str, torch.Generator],
                     val: Any, seed: int, context: DefenceContext) -> LoopState:
    """Continue from the checkpoint when there is a matching one; else score round 0 (the naive model)."""
    payload = store.load()
    if payload is not None:
        state = store.restore(payload, model, optimizer, precision, generators)
        context.log(f"{spec.defence}: resuming after round {state.resumed_from_round} of {len(spec.schedule)} "
                    f"from {store.path}")
        return state
    started = time.perf_counter()
    score = spec.score or validate
    val_clean, val_robust = score(model, val, spec.selection_epsilon, spec.settings, seed, context.device)
    entry = _entry(0, None, None, None, None, val_clean, val_robust, time.perf_counter() - started)
    state = LoopState(next_index=0, log=[entry], best=Best(0, val_clean, val_robust, cpu_state_dict(model)),
                      finished=not spec.schedule, generators=generators)
    store.save(state, model, optimizer, precision)
    context.log(f"{spec.defence}: round 0 (naive model): val clean {val_clean:.3f}, val robust "
                f"{val_robust:.3f} at ε={spec.selection_epsilon:g}")
    return state


def _loop(state: LoopState, store: CheckpointStore, spec: TrainingSpec, model: nn.Module,
          optimizer: torch.optim.Optimizer, precision: Precision, train: Any, val: Any, seed: int,
          context: DefenceContext) -> None:
    """Train the remaining rounds; after each: validate, keep the best, checkpoint, maybe stop early."""
    total = len(spec.schedule)
    handle = context.progress(f"hardening ({spec.defence})", total)
    trainer = parallel.wrap(model, context.device) if not state.finished else model
    try:
        handle.advance(state.next_index)
        while not state.finished:
            plan = spec.schedule[state.next_index]
            started = time.perf_counter()
            loss, train_acc = train_round(trainer, train, spec, plan.epsilon, optimizer, state.generators,
                                          precision, context.device)
            if not math.isfinite(loss):
                raise ModelError(f"{spec.defence}: the training loss became {loss} in round {plan.round}; "
                                 "lower defence.learning_rate")
            distributed.broadcast_module(model)  # BatchNorm buffers: rank 0's, so every rank validates alike
            score = spec.score or validate
            val_clean, val_robust = score(model, val, spec.selection_epsilon, spec.settings, seed, context.device)
            _record(state, plan, loss, train_acc, val_clean, val_robust, time.perf_counter() - started, model,
                    spec.settings.early_stopping_patience, total)
            store.save(state, model, optimizer, precision)
            handle.advance(1)
            context.log(_describe_round(spec, state))
    finally:
        handle.close()


def _record(state: LoopState, plan: RoundPlan, loss: float, train_acc: float, val_clean: float, val_robust: float,
            seconds: float, model: nn.Module, patience: int | None, total: int) -> None:
    """Append the round's log entry, update the best round and the early-stopping counter."""
    state.log.append(_entry(plan.round, plan.stage, plan.epsilon, loss, train_acc, val_clean, val_robust, seconds))
    if state.best.beaten_by(val_clean, val_robust):
        state.best, state.stale = Best(plan.round, val_clean, val_robust, cpu_state_dict(model)), 0
    else:
        state.stale += 1
    state.next_index += 1
    state.early_stopped = patience is not None and state.stale >= patience and state.next_index < total
    state.finished = state.early_stopped or state.next_index >= total


def _entry(round_: int, stage: int | None, epsilon: float | None, loss: float | None, train_acc: float | None,
           val_clean: float, val_robust: float, seconds: float) -> dict[str, Any]:
    """One training-log row (round 0, the naive model, has no stage, epsilon, loss or train accuracy)."""
    def r6(value: float | None) -> float | None:
        return None if value is None else round(float(value), 6)

    return {"round": round_, "stage": stage, "epsilon": epsilon, "loss": r6(loss), "train_accuracy": r6(train_acc),
            "val_clean_accuracy": r6(val_clean), "val_robust_accuracy": r6(val_robust),
            "seconds": round(seconds, 3)}


# --------------------------------------------------------------------------- helpers


def _splits(context: DefenceContext, defence: str) -> tuple[Any, Any]:
    """The train and validation splits; both must be non-empty (selection never looks at test)."""
    splits = context.dataset.splits
    train, val = splits.get("train"), splits.get("val")
    if train is None or len(train) == 0:
        raise DataError(f"{defence}: the data set has no training images to harden on")
    if val is None or len(val) == 0:
        raise DataError(f"{defence}: the data set has an empty val split; rounds are selected on validation data "
                        "only (never on test), so a val split is required")
    return train, val


def _trainable_copy(module: nn.Module, device: torch.device) -> nn.Module:
    """A deep copy of the naive model on `device` with every parameter trainable (the naive one is untouched)."""
    model = copy.deepcopy(module).to(device)
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return model


def _material(spec: TrainingSpec, naive: ModelBundle, context: DefenceContext, seed: int) -> dict[str, Any]:
    """Everything that decides the hardened weights: a checkpoint made from other material is not resumed."""
    splits = context.dataset.splits
    return {"code_version": DEFENCE_CODE_VERSION, "defence": spec.defence, "params": spec.params, "seed": seed,
            "naive_state_dict_sha256": state_dict_sha256(cpu_state_dict(naive.module)),
            "dataset_content_sha256": context.dataset.provenance.get("content_sha256"),
            "train_labels_sha256": labels_sha256(splits["train"]), "val_labels_sha256": labels_sha256(splits["val"]),
            "device": context.device.type, "torch": torch.__version__,
            **({"world_size": distributed.world_size()} if distributed.is_distributed() else {})}


def _describe_round(spec: TrainingSpec, state: LoopState) -> str:
    """One log line per finished round."""
    e = state.log[-1]
    best = " (best so far)" if state.best.round == e["round"] else ""
    stop = "; early stop: no val-robust improvement" if state.early_stopped else ""
    return (f"{spec.defence}: round {e['round']}/{len(spec.schedule)} stage {e['stage']} ε={e['epsilon']:g}: "
            f"loss {e['loss']:.4f}, adv train acc {e['train_accuracy']:.3f}, val clean "
            f"{e['val_clean_accuracy']:.3f}, val robust {e['val_robust_accuracy']:.3f}{best} "
            f"({e['seconds']:.1f} s){stop}")


def _describe_selection(spec: TrainingSpec, state: LoopState) -> str:
    """Which round was kept, and why."""
    best = state.best
    which = "the naive model (no round beat it)" if best.round == 0 else f"round {best.round}"
    return (f"{spec.defence}: selected {which}: val robust {best.val_robust:.3f}, val clean {best.val_clean:.3f} "
            f"at ε={spec.selection_epsilon:g}")


def _provenance(spec: TrainingSpec, naive: ModelBundle, state: LoopState, precision: Precision, seed: int,
                weights: bytes, weights_path: str, n_val: int, context: DefenceContext) -> dict[str, Any]:
    """The hardened model's provenance: selected weights' hashes, the log, selection, precision, resume."""
    naive_prov = naive.provenance
    settings = spec.settings
    copied = {k: naive_prov[k] for k in ("architecture", "n_parameters", "normalization") if k in naive_prov}
    return {
        **copied, "source": f"defence:{spec.defence}", "defence": spec.defence,
        "naive": {k: naive_prov[k] for k in NAIVE_PROVENANCE_KEYS if k in naive_prov},
        "weights_sha256": sha256_bytes(weights), "state_dict_sha256": state_dict_sha256(state.best.state),
        "weights_path": weights_path, "selected_round": state.best.round, "naive_selected": state.best.round == 0,
        "selected_val_clean_accuracy": round(state.best.val_clean, 6),
        "selected_val_robust_accuracy": round(state.best.val_robust, 6),
        "selection": {"split": "val", "n_images": n_val, **(spec.selection or {
                      "attack": "linf_pgd against each round's own model",
                      "epsilon": spec.selection_epsilon, "steps": settings.selection_steps,
                      "rel_stepsize": settings.selection_rel_stepsize, "random_start": True,
                      "rule": "max val robust accuracy, ties: max val clean accuracy, then the earlier round"})},
        "rounds_planned": len(spec.schedule), "rounds_trained": len(state.log) - 1, "training_log": state.log,
        "early_stopped": state.early_stopped, "resumed_from_round": state.resumed_from_round,
        **precision.describe(), "mixed_precision_requested": settings.mixed_precision,
        "device": str(context.device), "seed": seed, "training": spec.params,
        "checkpoint_dir": str(context.checkpoint_dir), "defence_code_version": DEFENCE_CODE_VERSION,
    }
