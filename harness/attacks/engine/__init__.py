"""Engine options for attacks: the model attacks use, the batch size that fits, determinism, and `engine: auto`.

One module per job: `attack_model` (prepare the model attacks run on), `batchnorm` (BatchNorm folding),
`compilation` (torch.compile with an eager fallback), `batch_size`, `determinism`, `auto` (`engine: auto`);
`model_probe` holds the small helpers they share.
"""

from harness.attacks.engine.attack_model import AttackModule, engine_options_on, prepare_attack_model
from harness.attacks.engine.auto import resolve_engine
from harness.attacks.engine.batch_size import auto_batch_size
from harness.attacks.engine.batchnorm import fold_batchnorm
from harness.attacks.engine.determinism import enable_determinism

__all__ = ["AttackModule", "auto_batch_size", "enable_determinism", "engine_options_on", "fold_batchnorm",
           "prepare_attack_model", "resolve_engine"]
