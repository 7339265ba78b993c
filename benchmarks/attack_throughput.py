"""Attack throughput: PGD-10 L∞ on two models, plain torch vs foolbox, torchattacks, ART, the harness sweep and its
native engine; APGD-CE native vs torchattacks; 20-ε sweeps (Foolbox per ε, harness, native, native bisect).

Usage: .venv/bin/python benchmarks/attack_throughput.py [--quick] [--json PATH] [--markdown PATH] [--device D]
           [--peak-tflops T] [--batch N|auto] [--compile] [--threads N] [--only MODEL] [--bf16-images N]

Models, both wrapped in NormalizedClassifier and briefly trained on the generated CT-nodule phantom (benign vs
malignant; phantom_ct at 64×64, bilinearly upsampled to 224×224 for the ResNet):
  (a) MONAI resnet18(spatial_dims=2, n_input_channels=1, num_classes=2) on 1×224×224 (MONAI's default stride-1
      stem: ~27.8 GFLOP per image for one forward+backward w.r.t. the input);
  (b) the harness small_cnn on 1×64×64.
Every attack: ε = 0.004, 10 steps of ε/4, random start, images attacked in batches on one device. The images
are phantom test images the model classifies correctly (repeated if too few), so no method can skip any.
"limit" is the time of 10 forward+backward passes w.r.t. the input plus one judging forward (the most any PGD-10
can reach), warmed up and the best of 3 passes. "plain torch ceiling" is the plain loop on a BatchNorm-folded,
channels_last model under bf16 autocast, compiled with mode="max-autotune-no-cudagraphs" (bf16 and compile where
measured: CUDA, or --compile / without --no-cpu-bf16 on CPU).
Success rate is the share of attacked images misclassified afterwards (results.json's attack_success_rate).
Times include one judging forward per image (every method needs it to report success); the harness rows also
include the clean pass the runner makes; in the 20-ε sweep the harness skips images broken at a smaller ε.
Per row: the batch size, peak host RSS (the process's kernel high-water mark, reset at the row's start) and its
growth over the row, peak device memory (CUDA), achieved GFLOP/s and its fraction of the device's bf16 peak.
"batch auto" re-runs the harness row at harness.attacks.engine.auto_batch_size's batch (before: fixed; after: auto).
After the table, a bf16 check: the harness sweep over 20 ε in float32 eager and with engine.autocast=bf16 on
distinct test images of each trained model; PASS when the success rates differ by at most 1 percentage point at
every ε whose float32 rate is in 10–90 %.
torchattacks and adversarial-robustness-toolbox are optional: their rows say "not installed" when missing.
--quick is a small CPU run: small_cnn on 256 images; resnet18 untrained, on 8 images, without the 20-ε sweep
and the bf16 check.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import math
import platform
import resource
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from harness.attacks.engine import auto_batch_size, fold_batchnorm, prepare_attack_model
from harness.attacks.sweep import run_attack
from harness.data.batches import predict_logits
from harness.plan.schema import AttackSpec, EngineSettings
from harness.registry.contracts import DatasetContext, TensorSplit
from harness.registry.manager import default_registry
from harness.results.attack_outcome import AttackOutcome

EPSILON = 0.004
STEPS = 10
REL_STEPSIZE = 0.25
SWEEP_EPSILONS = [round(0.0005 * k, 4) for k in range(1, 21)]  # 0.0005 … 0.01, includes 0.004
SEED = 0
BF16_TOLERANCE_POINTS = 1.0  # bf16 vs float32 success rate, percentage points
BF16_BAND = (0.10, 0.90)  # compared where float32 success is in this band (elsewhere both sit at 0 or 100 %)
# Dense bf16 tensor-core peak, TFLOP/s, by a substring of torch.cuda.get_device_name (first match wins).
PEAK_BF16_TFLOPS: dict[str, float] = {"H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.4, "H200": 989.4,
                                      "H800": 989.4, "A100": 312.0, "L40S": 362.0, "L4": 121.0}
AttackFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Case:
    """One model and the images it is attacked on."""

    name: str
    model: nn.Module
    images: torch.Tensor  # N×C×H×W on the host
    labels: torch.Tensor
    batch: int
    gflop_per_step: float  # forward + backward w.r.t. the input, one image
    training: str
    sweep: bool = True
    clean_accuracy: float = 0.0  # on the whole phantom test split
    clean_correct: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    test: TensorSplit | None = None  # the whole phantom test split at the model's size (distinct images)

    @property
    def trained(self) -> bool:
        """Whether the model was trained (an untrained model's success rates mean nothing)."""
        return not self.training.startswith("untrained")


@dataclass
class Row:
    """One line of the table."""

    model: str
    method: str
    images_per_s: float | None = None
    success: float | None = None
    batch: int | None = None
    rss_mb: float | None = None  # peak RSS of the process while the row ran (the kernel's high-water mark)
    rss_delta_mb: float | None = None  # that peak minus the RSS when the row started
    device_mb: float | None = None  # peak device memory allocated by torch during the row (CUDA only)
    seconds: float | None = None
    note: str = ""
    ratio: float | None = None
    of_limit: float | None = None
    gflops: float | None = None  # achieved GFLOP/s at the nominal 10 steps per image
    of_peak: float | None = None  # gflops as a fraction of the device's bf16 dense peak


# ------------------------------------------------------------------------------------------ measuring


class PeakRSS:
    """Peak resident set size of this process while the block runs, and the RSS when it started.

    Linux: the kernel's high-water mark (VmHWM) is reset through /proc/self/clear_refs at the start and read at
    the end, so the peak is exact. Where that is not allowed, /proc/self/status is sampled every 5 ms instead.
    """

    def __init__(self) -> None:
        self.start = self.peak = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = status_mb("VmRSS") or _maxrss_mb()
        if not reset_high_water_mark():
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is None:
            self.peak = max(self.peak, status_mb("VmHWM") or 0.0)
        else:
            self._stop.set()
            self._thread.join()
        self.peak = max(self.peak, status_mb("VmRSS") or 0.0)

    @property
    def growth(self) -> float:
        """Peak minus the RSS at the start, MB."""
        return self.peak - self.start

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, status_mb("VmRSS") or 0.0)


def status_mb(key: str) -> float | None:
    """A memory figure (VmRSS, VmHWM) of this process from /proc/self/status, MB; None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_high_water_mark() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS; False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return status_mb("VmHWM") is not None


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def release_free_memory() -> None:
    """Collect garbage and hand the C heap's free pages back to the OS (glibc malloc_trim), so that a row's RSS
    growth is its own working set rather than hidden in memory an earlier row freed but the process kept."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def measured(row: Row, n_images: int, device: torch.device) -> Iterator[None]:
    """Fill a row's seconds, images/s, peak RSS and peak device memory from the block it wraps."""
    release_free_memory()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    with PeakRSS() as rss:
        start = time.perf_counter()
        yield
        _sync(device)
        row.seconds = time.perf_counter() - start
    row.images_per_s = n_images / row.seconds
    row.rss_mb, row.rss_delta_mb = rss.peak, rss.growth
    if device.type == "cuda":
        row.device_mb = torch.cuda.max_memory_allocated(device) / 2**20


def _batches(case: Case, device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor, slice]]:
    for start in range(0, len(case.images), case.batch):
        part = slice(start, start + case.batch)
        yield case.images[part].to(device), case.labels[part].to(device), part


def run_batched(case: Case, method: str, attack: AttackFn, device: torch.device, note: str = "") -> Row:
    """Attack every image batch by batch, judge each adversarial with the float32 model, time it all."""
    row = Row(case.name, method, batch=case.batch, note=note)
    fooled = np.zeros(len(case.images), dtype=bool)
    torch.manual_seed(SEED)
    with measured(row, len(case.images), device):
        for x, y, part in _batches(case, device):
            adversarial = attack(x, y)
            with torch.no_grad():
                fooled[part] = (case.model(adversarial).argmax(1) != y).cpu().numpy()
    row.success = _rate(fooled, case.clean_correct)
    case.model.zero_grad(set_to_none=True)  # naive callers leave weight gradients behind
    return row


def _rate(fooled: np.ndarray, clean_correct: np.ndarray) -> float:
    return float((fooled & clean_correct).sum() / max(1, clean_correct.sum()))


# ------------------------------------------------------------------------------------------ methods


def limit_row(case: Case, device: torch.device, repeats: int = 3) -> Row:
    """The most any PGD-10 can reach: 10 forward+backward passes w.r.t. the input (frozen weights) plus the
    judging forward, per image. Warmed up first (cuDNN autotuning, allocator) and the best of `repeats` passes
    is taken, so it is a ceiling rather than one noisy pass."""
    row = Row(case.name, "limit (10 fwd+bwd + 1 fwd)", batch=case.batch)
    frozen = [p for p in case.model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)

    def backward_pass() -> None:
        for x, y, _ in _batches(case, device):
            x.requires_grad_(True)
            torch.autograd.grad(F.cross_entropy(case.model(x), y, reduction="sum"), x)

    @torch.no_grad()
    def forward_pass() -> None:
        for x, _, _ in _batches(case, device):
            case.model(x)

    try:
        backward_pass()
        forward_pass()  # warm-up
        with measured(row, len(case.images), device):
            step = min(_timed(backward_pass, device) for _ in range(repeats))
            judge = min(_timed(forward_pass, device) for _ in range(repeats))
    finally:
        for p in frozen:
            p.requires_grad_(True)
    row.seconds = STEPS * step + judge
    row.images_per_s = len(case.images) / row.seconds
    row.note = (f"best of {repeats} after a warm-up: fwd+bwd {len(case.images) / step:.1f} images/s per step, "
                f"fwd {len(case.images) / judge:.1f} images/s")
    return row


def _timed(work: Callable[[], None], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    work()
    _sync(device)
    return time.perf_counter() - start


def plain_pgd(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, eps: float = EPSILON,
              steps: int = STEPS, rel_stepsize: float = REL_STEPSIZE) -> torch.Tensor:
    """PGD L∞ in plain torch: random start, `steps` signed-gradient steps of rel_stepsize·ε, project, clamp."""
    step = rel_stepsize * eps
    adversarial = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
    for _ in range(steps):
        adversarial.requires_grad_(True)
        loss = F.cross_entropy(model(adversarial), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, adversarial)
        adversarial = adversarial.detach() + step * grad.sign()
        adversarial = torch.minimum(torch.maximum(adversarial, x - eps), x + eps).clamp(0, 1)
    return adversarial.detach()


def ceiling_attack(case: Case, device: torch.device, args: argparse.Namespace) -> tuple[AttackFn, str]:
    """The plain-torch ceiling: plain_pgd on a BatchNorm-folded, channels_last copy under bf16 autocast, compiled
    with mode="max-autotune-no-cudagraphs" (compile and bf16 only where the benchmark measures them)."""
    from harness.attacks.engine.model_probe import frozen_eval_copy

    cuda = device.type == "cuda"
    model = frozen_eval_copy(case.model, device)
    folded = fold_batchnorm(model)
    model = model.to(memory_format=torch.channels_last)
    use_bf16 = cuda or not args.no_cpu_bf16
    use_compile = cuda or args.compile
    forward = torch.compile(model, mode="max-autotune-no-cudagraphs") if use_compile else model

    def logits(x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            return forward(x).float()

    parts = [f"{folded} BN folded", "channels_last", "bf16" if use_bf16 else "float32",
             "compile max-autotune-no-cudagraphs" if use_compile else "eager (compile: CUDA or --compile)"]
    attack = lambda x, y: plain_pgd(logits, x, y)  # noqa: E731 - the loop itself is the plain one
    if use_compile:
        x, y, _ = next(_batches(case, device))
        start = time.perf_counter()
        attack(x, y)
        parts.append(f"first batch {time.perf_counter() - start:.1f} s (compiles), counted")
    return attack, ", ".join(parts)


def torchattacks_apgd(model: nn.Module, steps: int) -> AttackFn | str:
    """torchattacks.APGD (cross-entropy, L∞, one restart), or why it cannot run."""
    try:
        import torchattacks
    except ImportError as exc:
        return f"not installed ({exc.name})"
    attack = torchattacks.APGD(model, norm="Linf", eps=EPSILON, steps=steps, n_restarts=1, loss="ce", seed=SEED)
    return lambda x, y: attack(x, y)


def foolbox_attack(model: nn.Module, device: torch.device, eps: float = EPSILON) -> AttackFn:
    """Foolbox 3 LinfPGD used the naive way: model as is (weights not frozen), one call per ε."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import foolbox as fb
    fmodel = fb.PyTorchModel(model, bounds=(0.0, 1.0), device=device)
    attack = fb.attacks.LinfPGD(steps=STEPS, rel_stepsize=REL_STEPSIZE, random_start=True)
    return lambda x, y: attack(fmodel, x, y, epsilons=[eps])[1][0]


def torchattacks_attack(model: nn.Module, device: torch.device) -> AttackFn | str:
    """torchattacks.PGD, or why it cannot run."""
    try:
        import torchattacks
    except ImportError as exc:
        return f"not installed ({exc.name})"
    attack = torchattacks.PGD(model, eps=EPSILON, alpha=EPSILON * REL_STEPSIZE, steps=STEPS, random_start=True)
    return lambda x, y: attack(x, y)


def art_attack(model: nn.Module, device: torch.device, shape: tuple[int, ...], batch: int) -> AttackFn | str:
    """ART's ProjectedGradientDescent on a PyTorchClassifier (numpy in, numpy out), or why it cannot run."""
    try:
        from art.attacks.evasion import ProjectedGradientDescent
        from art.estimators.classification import PyTorchClassifier
    except ImportError as exc:
        return f"not installed ({exc.name})"
    classifier = PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=shape, nb_classes=2,
                                   clip_values=(0.0, 1.0), device_type="gpu" if device.type == "cuda" else "cpu")
    attack = ProjectedGradientDescent(classifier, norm=np.inf, eps=EPSILON, eps_step=EPSILON * REL_STEPSIZE,
                                      max_iter=STEPS, num_random_init=1, batch_size=batch, verbose=False)
    return lambda x, y: torch.from_numpy(attack.generate(x=x.cpu().numpy(), y=y.cpu().numpy())).to(device)


def pgd_spec(epsilons: list[float], attack: str = "pgd_linf", schedule: str = "ascending",
             **params: object) -> tuple[AttackSpec, object]:
    """A registered attack plugin (default: Foolbox's pgd_linf, 10 steps of ε/4, random start) and a spec for it
    over `epsilons`; `params` override the plugin's defaults."""
    plugin = default_registry().get("attack", attack)
    spec = AttackSpec(id=attack, attack=attack, params=plugin.Params(**params), epsilons=list(epsilons),
                      norm=plugin.norm, kind=plugin.kind, schedule=schedule)
    return spec, plugin


def tensor_split(images: torch.Tensor, labels: torch.Tensor | np.ndarray) -> TensorSplit:
    """An in-memory split with made-up sample and patient ids."""
    ids = [f"s{i}" for i in range(len(images))]
    return TensorSplit(images, np.asarray(labels), ids, ids)


def harness_row(case: Case, device: torch.device, epsilons: list[float], method: str,
                settings: EngineSettings | None = None, batch: int | None = None, attack: str = "pgd_linf",
                schedule: str = "ascending", **params: object) -> Row:
    """The harness sweep (run_attack with an attack plugin, Foolbox's pgd_linf by default) on an in-memory split,
    optionally with engine options.

    As in the runner, a prepared (reduced-precision, compiled…) model crafts the adversarials and the float32
    eager model judges them.
    """
    spec, plugin = pgd_spec(epsilons, attack, schedule, **params)
    batch = batch or case.batch
    split = tensor_split(case.images, case.labels)
    attack_model, note = case.model, ""
    if settings is not None:
        start = time.perf_counter()
        attack_model, notes = prepare_attack_model(case.model, settings, device, case.images[:case.batch])
        _sync(device)
        note = "; ".join([f"prepare {time.perf_counter() - start:.1f} s", *map(_short, notes)])
    skipped = int((~case.clean_correct).sum())
    note = "; ".join(filter(None, [f"skips {skipped} clean-misclassified" if skipped else "", note]))
    def sweep() -> AttackOutcome:
        clean = predict_logits(case.model, split, batch, device).argmax(axis=1)
        return run_attack(attack_model, split, spec, plugin, clean, batch, device, SEED, "naive", judge=case.model)

    if settings is not None and settings.compile:  # time the steady state; report the compiling pass apart
        start = time.perf_counter()
        sweep()
        _sync(device)
        note += f"; first pass {time.perf_counter() - start:.1f} s (compiles each batch shape), not timed"
    row = Row(case.name, method, batch=batch, note=note)
    torch.manual_seed(SEED)
    with measured(row, len(case.images), device):
        outcome = sweep()
    row.success = _rate(outcome.success[epsilons.index(EPSILON)], case.clean_correct)
    return row


def _short(note: str) -> str:
    """Engine warnings as table notes (the autocast-on-CPU one shortened)."""
    return "bf16 on CPU (meant for CUDA)" if "meant for CUDA" in note else note


def foolbox_sweep_row(case: Case, device: torch.device) -> Row:
    """Foolbox LinfPGD once per ε of the 20-ε grid, each time on every image (what a sweep costs without skips)."""
    row = Row(case.name, f"foolbox LinfPGD, {len(SWEEP_EPSILONS)} ε (one call per ε, all images)", batch=case.batch)
    fooled = np.zeros(len(case.images), dtype=bool)
    attacks = {eps: foolbox_attack(case.model, device, eps) for eps in SWEEP_EPSILONS}
    torch.manual_seed(SEED)
    with measured(row, len(case.images), device):
        for x, y, part in _batches(case, device):
            for eps, attack in attacks.items():
                adversarial = attack(x, y)
                with torch.no_grad():
                    wrong = (case.model(adversarial).argmax(1) != y).cpu().numpy()
                if eps == EPSILON:
                    fooled[part] = wrong
    row.success = _rate(fooled, case.clean_correct)
    case.model.zero_grad(set_to_none=True)
    return row


# ------------------------------------------------------------------------------------------ bf16 check


def success_rates(model: nn.Module, split: TensorSplit, epsilons: list[float], batch: int, device: torch.device,
                  settings: EngineSettings | None = None) -> tuple[list[float], int, list[str]]:
    """attack_success_rate per ε of the harness PGD-10 sweep (float32 eager, or through `settings`), the number
    of clean-correct images it is a share of, and the engine's notes.

    As in results.json: the share of clean-correct images misclassified by a valid adversarial, judged by the
    float32 model. Per-batch seeds are the runner's, so float32 and bf16 start from the same random points.
    """
    spec, plugin = pgd_spec(epsilons)
    attack_model, notes = model, []
    if settings is not None:
        attack_model, notes = prepare_attack_model(model, settings, device, split.images[:batch])
    clean = predict_logits(model, split, batch, device).argmax(axis=1)
    correct = clean == split.labels
    outcome = run_attack(attack_model, split, spec, plugin, clean, batch, device, SEED, "naive", judge=model)
    rates = (outcome.success & correct).sum(axis=1) / max(1, int(correct.sum()))
    return [float(r) for r in rates], int(correct.sum()), notes


def compare_rates(epsilons: list[float], reference: list[float], candidate: list[float],
                  band: tuple[float, float] = BF16_BAND, tolerance: float = BF16_TOLERANCE_POINTS) -> dict:
    """Max |candidate − reference| in percentage points over the ε whose reference rate lies in `band`."""
    compared = [k for k, rate in enumerate(reference) if band[0] <= rate <= band[1]]
    worst = max((abs(candidate[k] - reference[k]) * 100 for k in compared), default=None)
    return {"epsilons": list(epsilons), "float32": list(reference), "bf16": list(candidate),
            "compared_epsilons": [epsilons[k] for k in compared], "band": list(band),
            "max_abs_diff_points": worst, "tolerance_points": tolerance,
            "passed": None if worst is None else bool(worst <= tolerance)}


def bf16_check(model: nn.Module, split: TensorSplit, epsilons: list[float], batch: int,
               device: torch.device) -> dict:
    """The harness sweep in float32 eager and with engine.autocast=bf16: per-ε success rates and their gap."""
    start = time.perf_counter()
    reference, n_correct, _ = success_rates(model, split, epsilons, batch, device)
    middle = time.perf_counter()
    candidate, _, notes = success_rates(model, split, epsilons, batch, device, EngineSettings(autocast="bf16"))
    result = compare_rates(epsilons, reference, candidate)
    result.update(images=len(split), clean_correct=n_correct, batch=batch, float32_s=middle - start,
                  bf16_s=time.perf_counter() - middle, notes=[_short(n) for n in notes])
    return result


def bf16_report(name: str, check: dict) -> str:
    """The bf16 check as printed lines."""
    lines = [f"{name}: bf16 autocast vs float32 eager, harness PGD-10 sweep on {check['images']} phantom test images "
             f"({check['clean_correct']} clean-correct); success rate per ε:",
             f"  {'ε':>7} {'float32':>8} {'bf16':>8} {'diff pt':>8}"]
    for eps, ref, cand in zip(check["epsilons"], check["float32"], check["bf16"], strict=True):
        mark = "" if eps in check["compared_epsilons"] else "  (outside 10–90 %)"
        lines.append(f"  {eps:>7.4f} {ref:>8.1%} {cand:>8.1%} {(cand - ref) * 100:>+8.2f}{mark}")
    worst, tolerance = check["max_abs_diff_points"], check["tolerance_points"]
    if worst is None:
        lines.append("  no ε has a float32 success rate in 10–90 %: nothing to compare")
    else:
        verdict = "PASS" if check["passed"] else "FAIL"
        lines.append(f"  max |bf16 − float32| over {len(check['compared_epsilons'])} ε with float32 success in "
                     f"10–90 %: {worst:.2f} points → {verdict} (within {tolerance:g} point; one image is "
                     f"{100 / max(1, check['clean_correct']):.2f} points)")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ cases


def phantom(n_images: int, train_images: int) -> tuple[TensorSplit, TensorSplit]:
    """Train and test splits of the phantom_ct plugin at 64×64 (test tiled up to n_images if short)."""
    plugin = default_registry().get("dataset", "phantom_ct")
    n_patients = max(60, math.ceil(max(n_images, train_images) / 0.9))
    with tempfile.TemporaryDirectory() as cache:
        params = plugin.Params(seed=SEED, n_patients=n_patients, image_size=64, split_fractions=[0.5, 0.05, 0.45])
        bundle = plugin.load(params, DatasetContext(seed=SEED, base_dir=Path.cwd(),
                                                    cache_dir=Path(cache)))
    return bundle.splits["train"], bundle.splits["test"]


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    if images.shape[-1] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)


def train(model: nn.Module, train_split: TensorSplit, size: int, steps: int, device: torch.device) -> str:
    """Adam (lr 1e-3, batch 32) for `steps` steps; with 0 steps only the BatchNorm statistics are calibrated."""
    from harness_plugins.models.architectures import NormalizedClassifier

    images = train_split.images
    labels = torch.as_tensor(train_split.labels, dtype=torch.int64)
    if isinstance(model, NormalizedClassifier):
        model.set_normalization(float(images.mean()), float(images.std()))
    model.to(device).train()
    g = torch.Generator().manual_seed(SEED)
    if steps == 0:
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = None  # cumulative average over the calibration batches
        with torch.no_grad():
            for _ in range(2):
                index = torch.randint(0, len(images), (16,), generator=g)
                model(_resize(images[index], size).to(device))
        model.eval()
        return "untrained; BatchNorm statistics calibrated on 32 phantom images"
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        index = torch.randint(0, len(images), (32,), generator=g)
        loss = F.cross_entropy(model(_resize(images[index], size).to(device)), labels[index].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()
    return f"trained {steps} Adam steps (batch 32) on phantom_ct"


def gflop_per_step(model: nn.Module, shape: tuple[int, ...], device: torch.device) -> float:
    """GFLOP of one forward + backward w.r.t. the input for one image (torch's FLOP counter)."""
    x = torch.rand((1, *shape), device=device, requires_grad=True)
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        with FlopCounterMode(display=False) as counter:
            model(x).sum().backward()  # autograd.grad is not supported under the FLOP counter
    finally:
        for p in params:
            p.requires_grad_(True)
    return counter.get_total_flops() / 1e9


def build_case(name: str, size: int, n_images: int, batch: int, steps: int, device: torch.device,
               sweep: bool) -> Case:
    """The model for one case, trained briefly, and its attack images with clean correctness."""
    from monai.networks.nets import resnet18

    from harness_plugins.models.architectures import NormalizedClassifier, SmallCNN

    torch.manual_seed(SEED)
    if name == "resnet18":
        model = NormalizedClassifier(resnet18(spatial_dims=2, n_input_channels=1, num_classes=2), 1)
    else:
        model = SmallCNN().build(1, 2, (size, size))
    train_split, test_split = phantom(n_images, min(32 * max(steps, 1), 2000))
    training = train(model, train_split, size, steps, device)
    test = TensorSplit(_resize(test_split.images, size), test_split.labels, test_split.sample_ids,
                       test_split.group_ids)
    correct = predict_logits(model, test, batch, device).argmax(axis=1) == test.labels
    pool = np.flatnonzero(correct) if correct.any() else np.arange(len(test))
    index = pool[np.arange(n_images) % len(pool)]  # clean-correct images first, so no method skips any
    case = Case(name, model, test.images[index], torch.as_tensor(test.labels[index]), batch,
                gflop_per_step(model, (1, size, size), device), training, sweep)
    case.clean_correct = correct[index]
    case.clean_accuracy = float(correct.mean())
    case.test = test
    return case


# ------------------------------------------------------------------------------------------ the rows


def engine_variants(device: torch.device, args: argparse.Namespace) -> list[tuple[str, EngineSettings | None, str]]:
    """(label, settings or None, reason it is not measured) for each engine-option row."""
    cuda = device.type == "cuda"
    compile_ok = cuda or args.compile
    no_compile = "n/a: compile is measured on CUDA only (pass --compile to try on CPU)"
    rows: list[tuple[str, EngineSettings | None, str]] = [
        ("harness sweep PGD-10 + channels_last", EngineSettings(channels_last=True), ""),
        ("harness sweep PGD-10 + fold_batchnorm", EngineSettings(fold_batchnorm=True), ""),
        ("harness sweep PGD-10 + bf16 autocast", EngineSettings(autocast="bf16"),
         "" if cuda or not args.no_cpu_bf16 else "n/a: bf16 autocast is for CUDA")]
    full = EngineSettings(channels_last=True, fold_batchnorm=True, autocast="bf16", compile=True)
    rows += [("harness sweep PGD-10 + compile", EngineSettings(compile=True), "" if compile_ok else no_compile),
             ("harness sweep PGD-10 + all four options", full, "" if compile_ok else no_compile)]
    return rows


def native_variants(device: torch.device, args: argparse.Namespace) -> list[tuple[str, EngineSettings | None, str]]:
    """The native engine's rows: no options (what a CPU plan gets) and all options with static shapes (what
    `engine: auto` tries first on CUDA)."""
    compile_ok = device.type == "cuda" or args.compile
    bf16 = device.type == "cuda" or not args.no_cpu_bf16
    full = EngineSettings(channels_last=True, fold_batchnorm=True, autocast="bf16" if bf16 else "none",
                          compile=compile_ok, static_shapes=compile_ok)
    label = "native PGD-10 + " + ("all options, static shapes" if compile_ok else
                                  "channels_last, fold_batchnorm" + (", bf16" if bf16 else "") + " (no compile)")
    return [("native PGD-10 (1 ε), no engine options", None, ""), (label, full, "")]


def rows_for(case: Case, device: torch.device, args: argparse.Namespace, log: Callable[[str], None],
             peak_tflops: float | None = None) -> list[Row]:
    """Every row of one case, in table order."""
    shape = tuple(case.images.shape[1:])
    log("limit")
    rows = [limit_row(case, device)]
    log("plain torch PGD-10")
    rows.append(run_batched(case, "plain torch PGD-10", lambda x, y: plain_pgd(case.model, x, y), device))
    log("foolbox LinfPGD")
    rows.append(run_batched(case, "foolbox LinfPGD (one call per ε)", foolbox_attack(case.model, device), device,
                            note="weights not frozen (naive use)"))
    for method, make in (("torchattacks PGD", lambda: torchattacks_attack(case.model, device)),
                         ("ART ProjectedGradientDescent", lambda: art_attack(case.model, device, shape, case.batch))):
        log(method)
        attack = make()
        rows.append(Row(case.name, method, note=attack) if isinstance(attack, str)
                    else run_batched(case, method, attack, device))
    log("plain torch ceiling")
    ceiling, note = ceiling_attack(case, device, args)
    rows.append(run_batched(case, "plain torch ceiling (BN folded, channels_last, bf16, compile)", ceiling, device,
                            note=note))
    log("harness sweep PGD-10 (1 ε)")
    rows.append(harness_row(case, device, [EPSILON], "harness sweep PGD-10 (1 ε)"))
    for label, settings, _ in native_variants(device, args):
        log(label)
        rows.append(harness_row(case, device, [EPSILON], label, settings, attack="native_pgd_linf"))
    log("APGD-CE")
    rows.append(harness_row(case, device, [EPSILON], f"native APGD-CE, {STEPS} steps (1 ε)", attack="apgd_ce_linf",
                            steps=STEPS))
    apgd = torchattacks_apgd(case.model, STEPS)
    rows.append(Row(case.name, f"torchattacks APGD-CE, {STEPS} steps", note=apgd) if isinstance(apgd, str)
                else run_batched(case, f"torchattacks APGD-CE, {STEPS} steps", apgd, device))
    log("harness sweep PGD-10 (1 ε), batch auto")
    rows.append(auto_batch_row(case, device))
    for label, settings, reason in engine_variants(device, args):
        if reason:
            rows.append(Row(case.name, label, note=reason))
            continue
        log(label)
        rows.append(harness_row(case, device, [EPSILON], label, settings))
    if case.sweep:
        log(f"foolbox LinfPGD, {len(SWEEP_EPSILONS)} ε")
        rows.append(foolbox_sweep_row(case, device))
        foolbox_seconds = rows[-1].seconds
        for label, attack, schedule, why in (
                ("harness sweep PGD-10", "pgd_linf", "ascending", "skips images broken at a smaller ε"),
                ("native PGD-10", "native_pgd_linf", "ascending", "skips broken images, stops at the first success"),
                ("native PGD-10, schedule: bisect", "native_pgd_linf", "bisect",
                 "≤ ⌈log2(21)⌉ = 5 attacks per image")):
            log(f"{label}, {len(SWEEP_EPSILONS)} ε")
            rows.append(harness_row(case, device, SWEEP_EPSILONS, f"{label}, {len(SWEEP_EPSILONS)} ε",
                                    attack=attack, schedule=schedule))
            rows[-1].note = f"{foolbox_seconds / rows[-1].seconds:.1f}× faster than foolbox per ε ({why})"
    else:
        rows.append(Row(case.name, f"{len(SWEEP_EPSILONS)}-ε sweep comparison", note="skipped in --quick"))
    return _derived(rows, case, peak_tflops)


def auto_batch_row(case: Case, device: torch.device) -> Row:
    """The 1-ε harness sweep at auto_batch_size's batch (after) next to the fixed batch (before)."""
    method = "harness sweep PGD-10 (1 ε), batch auto"
    auto = auto_batch_size(case.model, tuple(case.images.shape[1:]), device, limit=len(case.images))
    rule = "search on CUDA" if device.type == "cuda" else "fixed rule on CPU"
    if auto == case.batch:
        return Row(case.name, method, batch=auto, note=f"auto_batch_size = {auto} ({rule}), the same as the fixed "
                                                       "batch: not measured again")
    row = harness_row(case, device, [EPSILON], method, batch=auto)
    row.note = "; ".join(filter(None, [f"auto_batch_size = {auto} ({rule}) vs fixed {case.batch}", row.note]))
    return row


def device_peak_tflops(device: torch.device, override: float | None) -> tuple[float | None, str]:
    """The bf16 dense peak to compare achieved FLOP/s with, and where it came from."""
    if override:
        return override, "--peak-tflops"
    if device.type != "cuda":
        return None, "no peak for CPU (pass --peak-tflops)"
    name = torch.cuda.get_device_name(device)
    for key, tflops in PEAK_BF16_TFLOPS.items():
        if key in name:
            return tflops, f"table ({key})"
    return None, f"{name} not in the peak table (pass --peak-tflops)"


def _derived(rows: list[Row], case: Case, peak_tflops: float | None) -> list[Row]:
    """Ratio to plain torch, fraction of the limit, achieved GFLOP/s (nominal 10 steps per image), of peak."""
    limit, plain = rows[0].images_per_s, rows[1].images_per_s
    for row in rows:
        if row.images_per_s is None:
            continue
        sweep = f"{len(SWEEP_EPSILONS)} ε" in row.method
        row.ratio = None if sweep else row.images_per_s / plain
        row.of_limit = None if sweep else row.images_per_s / limit
        row.gflops = None if sweep else row.images_per_s * STEPS * case.gflop_per_step
        row.of_peak = row.gflops / (peak_tflops * 1e3) if peak_tflops and row.gflops is not None else None
    return rows


# ------------------------------------------------------------------------------------------ output


def _fmt(value: float | None, spec: str, missing: str = "—") -> str:
    return missing if value is None else format(value, spec)


COLUMNS = (("model", 9), ("method", 50), ("batch", 5), ("images/s", 9), ("×plain", 7), ("of limit", 8),
           ("success", 8), ("GFLOP/s", 8), ("of peak", 7), ("RSS MB", 7), ("ΔRSS MB", 7), ("dev MB", 7))


def table(rows: list[Row], device: torch.device) -> str:
    """The printed table (device memory is n/a off CUDA; of peak is n/a without a known peak)."""
    cuda = device.type == "cuda"
    head = " ".join(f"{name:<{width}}" if i < 2 else f"{name:>{width}}" for i, (name, width) in enumerate(COLUMNS))
    lines = [head + "  note", "-" * (len(head) + 6)]
    for r in rows:
        measured_row = r.images_per_s is not None
        cells = [f"{r.model:<9}", f"{r.method:<50}", _fmt(r.batch, "5d"), _fmt(r.images_per_s, "9.3g"),
                 _fmt(r.ratio, "7.2f"), _fmt(r.of_limit, "8.0%"), _fmt(r.success, "8.1%"), _fmt(r.gflops, "8.1f"),
                 _fmt(r.of_peak, "7.2%", "n/a" if measured_row else "—"), _fmt(r.rss_mb, "7.0f"),
                 _fmt(r.rss_delta_mb, "7.0f"), _fmt(r.device_mb, "7.0f", "n/a" if measured_row and not cuda else "—")]
        lines.append(" ".join(f"{c:>{w}}" for c, (_, w) in zip(cells, COLUMNS, strict=True)) + f"  {r.note}")
    return "\n".join(lines)


def markdown_table(rows: list[Row], device: torch.device) -> str:
    """The same table as Markdown, for docs/performance.md."""
    cuda = device.type == "cuda"
    lines = ["| " + " | ".join(name for name, _ in COLUMNS) + " | note |",
             "|---|---|" + "---:|" * (len(COLUMNS) - 2) + "---|"]
    for r in rows:
        measured_row = r.images_per_s is not None
        cells = [r.model, r.method, _fmt(r.batch, "d"), _fmt(r.images_per_s, ".3g"), _fmt(r.ratio, ".2f"),
                 _fmt(r.of_limit, ".0%"), _fmt(r.success, ".1%"), _fmt(r.gflops, ".1f"),
                 _fmt(r.of_peak, ".2%", "n/a" if measured_row else "—"), _fmt(r.rss_mb, ".0f"),
                 _fmt(r.rss_delta_mb, ".0f"), _fmt(r.device_mb, ".0f", "n/a" if measured_row and not cuda else "—")]
        lines.append("| " + " | ".join([*cells, r.note]) + " |")
    return "\n".join(lines)


def environment(device: torch.device) -> dict[str, object]:
    """Versions and machine, for the JSON and the table header."""
    import foolbox
    import monai

    info: dict[str, object] = {"python": platform.python_version(), "torch": torch.__version__,
                               "foolbox": foolbox.__version__, "monai": monai.__version__,
                               "device": str(device), "torch_threads": torch.get_num_threads(),
                               "cpu": platform.processor() or platform.machine()}
    for name, module in (("torchattacks", "torchattacks"), ("art", "art")):
        with contextlib.suppress(ImportError):
            info[name] = __import__(module).__version__
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small CPU run: fewer images, resnet18 untrained")
    parser.add_argument("--json", type=Path, help="also write the rows, bf16 check and environment as JSON")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown")
    parser.add_argument("--device", help="cpu or cuda[:N] (default: CUDA when present)")
    parser.add_argument("--peak-tflops", type=float, help="the device's bf16 dense peak TFLOP/s (default: from "
                        "a small table by GPU name; none on CPU)")
    parser.add_argument("--compile", action="store_true", help="measure torch.compile rows on CPU too")
    parser.add_argument("--no-cpu-bf16", action="store_true", help="skip the bf16 autocast row on CPU")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--images", type=int, help="images per model (default 1024 resnet18 / 4096 small_cnn)")
    parser.add_argument("--batch", type=_batch_arg, default=256,
                        help="attack batch size, or 'auto' for harness.attacks.engine.auto_batch_size (default 256; "
                        "--quick caps it at 8 for resnet18 and 64 for small_cnn)")
    parser.add_argument("--train-steps", type=int, help="training steps per model (default 300; --quick: "
                        "small_cnn 300, resnet18 0)")
    parser.add_argument("--only", choices=("resnet18", "small_cnn"), help="benchmark one model only")
    parser.add_argument("--bf16-images", type=int, help="test images for the bf16 success-rate check "
                        "(default 512; --quick 128); 0 skips it")
    return parser.parse_args(argv)


def _batch_arg(text: str) -> int | str:
    if text == "auto":
        return text
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("the batch size must be ≥ 1 or 'auto'")
    return value


def case_plans(args: argparse.Namespace) -> list[tuple[str, int, int, int | str, int, bool]]:
    """(name, image size, images, batch or 'auto', training steps, 20-ε sweep) for each model."""
    quick = args.quick

    def batch(cap: int) -> int | str:
        return args.batch if args.batch == "auto" or not quick else min(args.batch, cap)

    steps = args.train_steps
    plans = [("resnet18", 224, args.images or (8 if quick else 1024), batch(8),
              steps if steps is not None else (0 if quick else 300), not quick),
             ("small_cnn", 64, args.images or (256 if quick else 4096), batch(64),
              steps if steps is not None else 300, True)]
    return [plan for plan in plans if not args.only or plan[0] == args.only]


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print the table and the bf16 check; the JSON payload."""
    args = parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    peak, peak_source = device_peak_tflops(device, args.peak_tflops)
    bf16_images = args.bf16_images if args.bf16_images is not None else (128 if args.quick else 512)

    def log(message: str) -> None:
        print(f"  [{time.strftime('%H:%M:%S')}] {message}", flush=True)

    env = environment(device)
    print(f"attack throughput on {device} ({env.get('gpu', env['cpu'])}), torch {env['torch']}, "
          f"foolbox {env['foolbox']}, {env['torch_threads']} threads; PGD-10 L∞ ε={EPSILON}, step ε/4, random start; "
          f"bf16 peak: {peak if peak else 'n/a'} TFLOP/s ({peak_source})")
    rows: list[Row] = []
    cases, checks = [], {}
    for name, size, n, batch, steps, sweep in case_plans(args):
        log(f"{name}: building, training ({steps} steps) and scoring {n} images of 1×{size}×{size}")
        fixed = 64 if batch == "auto" else batch
        case = build_case(name, size, n, fixed, steps, device, sweep)
        if batch == "auto":
            case.batch = auto_batch_size(case.model, (1, size, size), device, limit=n)
        cases.append({"model": name, "image_shape": [1, size, size], "images": n, "batch": case.batch,
                      "batch_requested": batch, "gflop_per_image_step": case.gflop_per_step,
                      "training": case.training, "clean_accuracy": case.clean_accuracy,
                      "attacked_clean_correct": float(case.clean_correct.mean())})
        log(f"{name}: {case.training}; clean accuracy {case.clean_accuracy:.1%}; "
            f"{case.gflop_per_step:.3g} GFLOP per image per step; batch {case.batch}")
        rows += rows_for(case, device, args, log, peak)
        if bf16_images and case.trained and case.test is not None:
            log(f"{name}: bf16 success-rate check on {bf16_images} images, {len(SWEEP_EPSILONS)} ε")
            split = tensor_split(case.test.images[:bf16_images], case.test.labels[:bf16_images])
            checks[name] = bf16_check(case.model, split, SWEEP_EPSILONS, min(case.batch, 256), device)
        elif bf16_images:
            checks[name] = {"skipped": "untrained model: its success rates mean nothing"}
    print(table(rows, device))
    for c in cases:
        print(f"{c['model']}: {c['images']} images 1×{c['image_shape'][1]}×{c['image_shape'][2]}, batch {c['batch']}, "
              f"{c['training']}, clean accuracy {c['clean_accuracy']:.1%}, {c['gflop_per_image_step']:.3g} GFLOP "
              "per image per step")
    for name, check in checks.items():
        print(f"{name}: bf16 check skipped ({check['skipped']})" if "skipped" in check else bf16_report(name, check))
    payload = {"environment": env, "settings": {"epsilon": EPSILON, "steps": STEPS, "rel_stepsize": REL_STEPSIZE,
                                                "random_start": True, "sweep_epsilons": SWEEP_EPSILONS,
                                                "quick": args.quick, "peak_bf16_tflops": peak,
                                                "peak_source": peak_source},
               "cases": cases, "rows": [asdict(r) for r in rows], "bf16_check": checks}
    if args.json:
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown_table(rows, device) + "\n")
    return payload


if __name__ == "__main__":
    main()
