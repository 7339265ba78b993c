"""Attack throughput: PGD-10 L∞ on two models, plain torch vs foolbox, torchattacks, ART and the harness sweep.

Usage: .venv/bin/python benchmarks/attack_throughput.py [--quick] [--json PATH] [--device cpu|cuda]
                                                       [--peak-tflops T] [--compile] [--threads N]

Models, both wrapped in NormalizedClassifier and briefly trained on the generated CT-nodule phantom (benign vs
malignant; phantom_ct at 64×64, bilinearly upsampled to 224×224 for the ResNet):
  (a) MONAI resnet18(spatial_dims=2, n_input_channels=1, num_classes=2) on 1×224×224 (MONAI's default stride-1
      stem: ~27.8 GFLOP per image for one forward+backward w.r.t. the input);
  (b) the harness small_cnn on 1×64×64.
Every attack: ε = 0.004, 10 steps of ε/4, random start, images attacked in batches on one device. The images
are phantom test images the model classifies correctly (repeated if too few), so no method can skip any.
"limit" is the model's forward+backward-w.r.t.-input rate divided by 10 (the most any PGD-10 can reach).
Success rate is the share of attacked images misclassified afterwards (results.json's attack_success_rate).
Times include one judging forward per image (every method needs it to report success); the harness rows also
include the clean pass the runner makes; in the 20-ε sweep the harness skips images broken at a smaller ε.
torchattacks and adversarial-robustness-toolbox are optional: their rows say "not installed" when missing.
--quick is a small CPU run: small_cnn on 256 images; resnet18 untrained, on 8 images, without the 20-ε sweep.
"""

from __future__ import annotations

import argparse
import contextlib
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

from harness.contracts import DatasetContext, TensorSplit
from harness.engine import prepare_attack_model
from harness.evaluation import AttackOutcome, predict_logits, run_attack
from harness.plan import AttackSpec, EngineSettings
from harness.plugin_manager import default_registry

EPSILON = 0.004
STEPS = 10
REL_STEPSIZE = 0.25
SWEEP_EPSILONS = [round(0.0005 * k, 4) for k in range(1, 21)]  # 0.0005 … 0.01, includes 0.004
SEED = 0
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


@dataclass
class Row:
    """One line of the table."""

    model: str
    method: str
    images_per_s: float | None = None
    success: float | None = None
    rss_mb: float | None = None
    device_mb: float | None = None
    seconds: float | None = None
    note: str = ""
    ratio: float | None = None
    of_limit: float | None = None
    gflops: float | None = None  # achieved GFLOP/s at the nominal 10 steps per image


# ------------------------------------------------------------------------------------------ measuring


class PeakRSS:
    """Peak resident set size of this process while the block runs (sampled every 5 ms from /proc)."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()

    def __enter__(self) -> PeakRSS:
        self.peak = _rss_mb()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_mb())


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def measured(row: Row, n_images: int, device: torch.device) -> Iterator[None]:
    """Fill a row's seconds, images/s, peak RSS and peak device memory from the block it wraps."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    with PeakRSS() as rss:
        start = time.perf_counter()
        yield
        _sync(device)
        row.seconds = time.perf_counter() - start
    row.images_per_s = n_images / row.seconds
    row.rss_mb = rss.peak
    if device.type == "cuda":
        row.device_mb = torch.cuda.max_memory_allocated(device) / 2**20


def _batches(case: Case, device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor, slice]]:
    for start in range(0, len(case.images), case.batch):
        part = slice(start, start + case.batch)
        yield case.images[part].to(device), case.labels[part].to(device), part


def run_batched(case: Case, method: str, attack: AttackFn, device: torch.device, note: str = "") -> Row:
    """Attack every image batch by batch, judge each adversarial with the float32 model, time it all."""
    row = Row(case.name, method, note=note)
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


def limit_row(case: Case, device: torch.device) -> Row:
    """Forward + backward w.r.t. the input with frozen weights: the ceiling of any gradient attack."""
    row = Row(case.name, "limit (fwd+bwd ÷ 10)")
    frozen = [p for p in case.model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        with measured(row, len(case.images), device):
            for x, y, _ in _batches(case, device):
                x.requires_grad_(True)
                torch.autograd.grad(F.cross_entropy(case.model(x), y, reduction="sum"), x)
    finally:
        for p in frozen:
            p.requires_grad_(True)
    per_step = row.images_per_s
    row.images_per_s = per_step / STEPS
    row.note = f"fwd+bwd {per_step:.1f} images/s per step"
    return row


def plain_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = EPSILON, steps: int = STEPS,
              rel_stepsize: float = REL_STEPSIZE) -> torch.Tensor:
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


def harness_row(case: Case, device: torch.device, epsilons: list[float], method: str,
                settings: EngineSettings | None = None) -> Row:
    """The harness sweep (run_attack with the pgd_linf plugin) on an in-memory split, optionally with options."""
    registry = default_registry()
    plugin = registry.get("attack", "pgd_linf")
    spec = AttackSpec(id="pgd_linf", attack="pgd_linf", params=plugin.Params(), epsilons=list(epsilons),
                      norm=plugin.norm, kind=plugin.kind)
    ids = [f"s{i}" for i in range(len(case.images))]
    split = TensorSplit(case.images, case.labels.numpy(), ids, ids)
    attack_model, note = case.model, ""
    if settings is not None:
        start = time.perf_counter()
        attack_model, notes = prepare_attack_model(case.model, settings, device, case.images[:case.batch])
        _sync(device)
        note = "; ".join([f"prepare {time.perf_counter() - start:.1f} s", *map(_short, notes)])
    skipped = int((~case.clean_correct).sum())
    note = "; ".join(filter(None, [f"skips {skipped} clean-misclassified" if skipped else "", note]))
    def sweep() -> AttackOutcome:
        clean = predict_logits(case.model, split, case.batch, device).argmax(axis=1)
        return run_attack(attack_model, split, spec, plugin, clean, case.batch, device, SEED, "naive")

    if settings is not None and settings.compile:  # time the steady state; report the compiling pass apart
        start = time.perf_counter()
        sweep()
        _sync(device)
        note += f"; first pass {time.perf_counter() - start:.1f} s (compiles each batch shape), not timed"
    row = Row(case.name, method, note=note)
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
    row = Row(case.name, f"foolbox LinfPGD, {len(SWEEP_EPSILONS)} ε (one call per ε, all images)")
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


# ------------------------------------------------------------------------------------------ cases


def phantom(n_images: int, train_images: int) -> tuple[TensorSplit, TensorSplit]:
    """Train and test splits of the phantom_ct plugin at 64×64 (test tiled up to n_images if short)."""
    plugin = default_registry().get("dataset", "phantom_ct")
    n_patients = max(60, math.ceil(max(n_images, train_images) / 0.9))
    with tempfile.TemporaryDirectory() as cache:
        params = plugin.Params(seed=SEED, n_patients=n_patients, image_size=64, split_fractions=[0.5, 0.05, 0.45])
        bundle = plugin.load(params, DatasetContext(seed=SEED, salt="bench", base_dir=Path.cwd(),
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


def rows_for(case: Case, device: torch.device, args: argparse.Namespace, log: Callable[[str], None]) -> list[Row]:
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
    log("harness sweep PGD-10 (1 ε)")
    rows.append(harness_row(case, device, [EPSILON], "harness sweep PGD-10 (1 ε)"))
    for label, settings, reason in engine_variants(device, args):
        if reason:
            rows.append(Row(case.name, label, note=reason))
            continue
        log(label)
        rows.append(harness_row(case, device, [EPSILON], label, settings))
    if case.sweep:
        log(f"foolbox LinfPGD, {len(SWEEP_EPSILONS)} ε")
        rows.append(foolbox_sweep_row(case, device))
        log(f"harness sweep PGD-10, {len(SWEEP_EPSILONS)} ε")
        rows.append(harness_row(case, device, SWEEP_EPSILONS, f"harness sweep PGD-10, {len(SWEEP_EPSILONS)} ε"))
        speedup = rows[-2].seconds / rows[-1].seconds
        rows[-1].note = f"{speedup:.1f}× faster than foolbox per ε (skips images broken at a smaller ε)"
    else:
        rows.append(Row(case.name, f"{len(SWEEP_EPSILONS)}-ε sweep comparison", note="skipped in --quick"))
    return _derived(rows, case, args.peak_tflops)


def _derived(rows: list[Row], case: Case, peak_tflops: float | None) -> list[Row]:
    """Ratio to plain torch, fraction of the limit, achieved GFLOP/s (nominal 10 steps per image)."""
    limit, plain = rows[0].images_per_s, rows[1].images_per_s
    for row in rows:
        if row.images_per_s is None:
            continue
        sweep = f"{len(SWEEP_EPSILONS)} ε" in row.method
        row.ratio = None if sweep else row.images_per_s / plain
        row.of_limit = None if sweep else row.images_per_s / limit
        row.gflops = None if sweep else row.images_per_s * STEPS * case.gflop_per_step
        if peak_tflops and row.gflops is not None:
            row.note = "; ".join(filter(None, [row.note, f"{row.gflops / 1e3 / peak_tflops:.1%} of peak"]))
    return rows


# ------------------------------------------------------------------------------------------ output


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def table(rows: list[Row], device: torch.device) -> str:
    """The printed table."""
    cuda = device.type == "cuda"
    head = (f"{'model':<9} {'method':<58} {'images/s':>9} {'×plain':>7} {'of limit':>8} {'success':>8} "
            f"{'GFLOP/s':>8} {'RSS MB':>7}" + (f" {'dev MB':>7}" if cuda else "") + "  note")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.model:<9} {r.method:<58} {_fmt(r.images_per_s, '9.2f')} {_fmt(r.ratio, '7.2f')} "
                     f"{_fmt(r.of_limit, '8.1%')} {_fmt(r.success, '8.1%')} {_fmt(r.gflops, '8.1f')} "
                     f"{_fmt(r.rss_mb, '7.0f')}" + (f" {_fmt(r.device_mb, '7.0f')}" if cuda else "") + f"  {r.note}")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small CPU run: fewer images, resnet18 untrained")
    parser.add_argument("--json", type=Path, help="also write the rows and environment as JSON")
    parser.add_argument("--device", help="cpu or cuda[:N] (default: CUDA when present)")
    parser.add_argument("--peak-tflops", type=float, help="the device's peak TFLOP/s, to report a fraction of it")
    parser.add_argument("--compile", action="store_true", help="measure torch.compile rows on CPU too")
    parser.add_argument("--no-cpu-bf16", action="store_true", help="skip the bf16 autocast row on CPU")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--images", type=int, help="images per model (default 1024 resnet18 / 4096 small_cnn)")
    parser.add_argument("--batch", type=int, default=256, help="attack batch size (default 256)")
    parser.add_argument("--train-steps", type=int, help="training steps per model (default 300; --quick: "
                        "small_cnn 300, resnet18 0)")
    parser.add_argument("--only", choices=("resnet18", "small_cnn"), help="benchmark one model only")
    args = parser.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    quick = args.quick
    plans = [("resnet18", 224, args.images or (8 if quick else 1024), min(args.batch, 8) if quick else args.batch,
              args.train_steps if args.train_steps is not None else (0 if quick else 300), not quick),
             ("small_cnn", 64, args.images or (256 if quick else 4096), min(args.batch, 64) if quick else args.batch,
              args.train_steps if args.train_steps is not None else 300, True)]

    def log(message: str) -> None:
        print(f"  [{time.strftime('%H:%M:%S')}] {message}", flush=True)

    env = environment(device)
    print(f"attack throughput on {device} ({env.get('gpu', env['cpu'])}), torch {env['torch']}, "
          f"foolbox {env['foolbox']}, {env['torch_threads']} threads; PGD-10 L∞ ε={EPSILON}, step ε/4, random start")
    rows: list[Row] = []
    cases = []
    for name, size, n, batch, steps, sweep in plans:
        if args.only and name != args.only:
            continue
        log(f"{name}: building, training ({steps} steps) and scoring {n} images of 1×{size}×{size}")
        case = build_case(name, size, n, batch, steps, device, sweep)
        cases.append({"model": name, "image_shape": [1, size, size], "images": n, "batch": batch,
                      "gflop_per_image_step": case.gflop_per_step, "training": case.training,
                      "clean_accuracy": case.clean_accuracy,
                      "attacked_clean_correct": float(case.clean_correct.mean())})
        log(f"{name}: {case.training}; clean accuracy {case.clean_accuracy:.1%}; "
            f"{case.gflop_per_step:.2f} GFLOP per image per step")
        rows += rows_for(case, device, args, log)
    print(table(rows, device))
    for c in cases:
        print(f"{c['model']}: {c['images']} images 1×{c['image_shape'][1]}×{c['image_shape'][2]}, batch {c['batch']}, "
              f"{c['training']}, clean accuracy {c['clean_accuracy']:.1%}, {c['gflop_per_image_step']:.2f} GFLOP "
              "per image per step")
    if args.json:
        payload = {"environment": env, "settings": {"epsilon": EPSILON, "steps": STEPS, "rel_stepsize": REL_STEPSIZE,
                                                    "random_start": True, "sweep_epsilons": SWEEP_EPSILONS,
                                                    "quick": quick},
                   "cases": cases, "rows": [asdict(r) for r in rows]}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
