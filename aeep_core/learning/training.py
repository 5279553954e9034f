"""Training the pairwise network: classification + pair loss on siamese pairs from L."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from aeep_core.learning.model import build_model, similarity_matrix
from aeep_core.pool import Pool

Progress = Callable[[int, int], None]


@dataclass
class TrainConfig:
    """How one round trains. Defaults measured on MNIST (see BENCHMARKS.md)."""

    batch_size: int = 64
    epochs: float = 40.0  # passes over L; the step count is clamped below
    min_steps: int = 300
    max_steps: int = 600
    lr: float = 4e-3
    weight_decay: float = 1e-4
    pair_weight: float = 1.0  # 0 disables the pair loss (the ablation)
    pair_scale: float = 5.0  # sharpness of the pair logit on the cosine similarity
    augment: bool = True
    # Continue last round's network: measured better for every strategy (BENCHMARKS.md,
    # "Warm start vs a fresh network per round": +0.7 to +1.6 points at 300 labels).
    # Networks trained end to end only: a head on frozen features is refitted each round
    # (ActiveLearner._continues_model).
    warm_start: bool = True
    # Heads on frozen features only (cheap to fit twice): a short fit on L makes guesses,
    # then the round's head is refitted on L plus the guesses for the most confident
    # ``pseudo_label_share`` of the unlabelled candidates (self-training). On the flowers it
    # lifted AEEP at 100 labels by about 2 points (BENCHMARKS.md, "Richer features and a
    # self-trained head").
    # 0 trains on L alone, the paper's setting (and the pipelined trainer's, which never
    # stops to refit).
    pseudo_label_share: float = 0.5
    # The two fits' steps: 100 + 130 (was 150 + 200) measured level on the flowers (AEEP, 20
    # seeds: acc@100 -0.08 +- 0.51, AULC +0.23 +- 0.42, paired) for a third less of the
    # round a photo project waits on after its last answer (issue 27; 75 + 100: -0.51 /
    # -0.37). BENCHMARKS.md, "The slow kind emulated, after two fixes".
    guess_steps: int = 100  # the fit that makes the guesses (at most max_steps)
    pseudo_label_steps: int = 130  # the refit on L + guesses (at most max_steps)

    def steps_for(self, n_labelled: int) -> int:
        """Gradient steps for a labelled set of ``n_labelled`` items."""
        steps = math.ceil(self.epochs * n_labelled / self.batch_size)
        return int(min(self.max_steps, max(self.min_steps, steps)))


def pair_loss(phi: torch.Tensor, y: torch.Tensor, scale: float) -> torch.Tensor:
    """Balanced pair loss over every pair of the minibatch (a siamese pair per pair).

    The similarity is :func:`aeep_core.learning.model.similarity_matrix`, (1 + cos) / 2 in [0, 1].
    It is pushed above 1/2 (cos > 0) for same-label pairs and below for different-label pairs;
    positives and negatives get equal total weight so the rarer kind still counts.
    """
    sim = similarity_matrix(phi, phi)
    same = y[:, None] == y[None, :]
    off_diag = ~torch.eye(len(y), dtype=torch.bool, device=y.device)
    pos, neg = same & off_diag, ~same
    logits = scale * (sim - 0.5)
    bce = F.binary_cross_entropy_with_logits(logits, same.float(), reduction="none")
    terms = []
    if pos.any():
        terms.append(bce[pos].mean())
    if neg.any():
        terms.append(bce[neg].mean())
    return torch.stack(terms).mean() if terms else phi.sum() * 0.0


def augment_images(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Small random affine jitter (±10° rotation, ±10% shift, 0.9–1.1 scale), batched."""
    x = x.float().div_(255.0) if x.dtype == torch.uint8 else x
    n = len(x)
    rand = lambda: torch.rand(n, generator=generator, device="cpu").to(x.device) * 2 - 1  # noqa: E731
    angle, scale = rand() * math.pi / 18, 1 + rand() * 0.1
    tx, ty = rand() * 0.2, rand() * 0.2  # grid units: 2 = full width, so 0.2 = 10%
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")


def class_balanced_batch(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Indices into ``labels``: a class drawn uniformly, then a member of it, ``size`` times
    (with replacement), so a handful of labels still gives every class and both pair
    kinds to each step. (The members are drawn in one call: the same numbers as one draw
    per pick, without a Python loop that held the GIL beside the UI every step.)"""
    members = np.argsort(labels, kind="stable")
    classes, starts, counts = np.unique(labels[members], return_index=True, return_counts=True)
    picks = rng.integers(len(classes), size=size)
    return members[starts[picks] + rng.integers(0, counts[picks])].astype(np.int64)


def adamw(params: Iterable[torch.Tensor], lr: float, weight_decay: float = 0.01) -> torch.optim.AdamW:
    """The optimizer every training loop uses. ``foreach``: one kernel call per step for all
    parameters instead of a Python loop over them (torch picks the loop on the CPU); the
    weights are bit for bit the same, and the GIL is held less beside the UI."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, foreach=True)


class ForegroundGate:
    """Lets the thread a person waits on (the UI) pause training in other threads between
    steps. Threads share one GIL: the Python between a step's kernels, run beside a
    keystroke, made that keystroke's repaint wait (BENCHMARKS.md, "Keystrokes while the
    trainer runs"). A hold ends at :meth:`release` or after its timeout, whichever comes
    first, so a release that never comes cannot stall training."""

    def __init__(self) -> None:
        self._until = 0.0

    def hold(self, seconds: float) -> None:
        """Start no training step for up to ``seconds`` from now."""
        self._until = max(self._until, time.monotonic() + seconds)

    def release(self) -> None:
        """Let training go on now."""
        self._until = 0.0

    def wait(self) -> None:
        """Return once no hold is in force (at once, almost always)."""
        while (left := self._until - time.monotonic()) > 0:
            time.sleep(min(left, 0.002))


#: this process's gate: :func:`training_step` waits on it; the app holds it per keystroke
foreground = ForegroundGate()


def training_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    config: TrainConfig,
    generator: torch.Generator,
    modality: str = "image",
) -> dict[str, float]:
    """One gradient step of the joint objective (classification + pair loss) on a minibatch
    (once the UI holds no :data:`foreground` gate)."""
    foreground.wait()
    if config.augment and modality == "image":
        x = augment_images(x, generator)
    logits, phi = model(x)
    ce = F.cross_entropy(logits, y)
    loss, pair = ce, float("nan")
    if config.pair_weight > 0:
        pl = pair_loss(phi, y, config.pair_scale)
        loss = ce + config.pair_weight * pl
        pair = float(pl.detach())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {"loss": float(loss.detach()), "ce": float(ce.detach()), "pair": pair}


def train(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: np.ndarray,
    config: TrainConfig,
    device: torch.device | str,
    seed: int,
    modality: str = "image",
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, float]:
    """Train ``model`` in place on the labelled ``inputs``/``labels`` for
    ``config.steps_for(len(labels))`` steps with a one-cycle schedule; return the last losses."""
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    model.to(device).train()
    opt = adamw(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = config.steps_for(len(labels))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=steps, pct_start=0.15)
    y_all = torch.as_tensor(labels, dtype=torch.long)
    losses = {"loss": float("nan"), "ce": float("nan"), "pair": float("nan")}
    with small_network_threads(modality):
        for step in range(steps):
            if should_stop is not None and should_stop():
                break
            idx = torch.from_numpy(class_balanced_batch(labels, config.batch_size, rng))
            losses = training_step(model, opt, inputs[idx].to(device), y_all[idx].to(device), config, gen, modality)
            sched.step()
            if progress is not None:
                progress(step + 1, steps)
    model.eval()
    return losses


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch threads (process-wide), then restore the count."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def small_network_threads(modality: str) -> Iterator[None]:
    """One torch thread while a head on features trains: its steps are microseconds of
    arithmetic, and a second thread only adds synchronisation, which on a busy machine
    (a core taken by another program) made a round of the head 60x slower."""
    if modality != "features":
        yield
        return
    with torch_threads(1):
        yield


@torch.inference_mode()
def score(
    model: nn.Module,
    inputs: torch.Tensor,
    device: torch.device | str,
    batch_size: int = 1024,
    progress: Progress | None = None,
    without: Collection[int] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities ``[N, C]`` and embeddings phi ``[N, d]`` for ``inputs``; the
    classes in ``without`` (merged away: :mod:`aeep_core.learning.class_outputs`) get
    probability 0, the others share what they had."""
    model.to(device).eval()
    probs, embs = [], []
    masked: list[int] | None = None
    for start in range(0, len(inputs), batch_size):
        foreground.wait()  # scoring in the pipelined trainer's thread yields to keystrokes too
        logits, phi = model(inputs[start : start + batch_size].to(device))
        logits = logits.float()
        if masked is None:
            masked = [c for c in without if 0 <= c < logits.shape[1]]
        if masked:
            logits[:, masked] = -torch.inf
        probs.append(torch.softmax(logits, 1).cpu())
        embs.append(phi.float().cpu())
        if progress is not None:
            progress(min(start + batch_size, len(inputs)), len(inputs))
    if not probs:
        return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
    return torch.cat(probs).numpy(), torch.cat(embs).numpy()


def training_steps_per_second(pool: Pool, steps: int = 30, batch_size: int = 64) -> float:
    """Gradient steps a second of the project's network on ``pool`` with the threads torch
    has now: what decides whether the pipelined trainer keeps up with a person, and the
    figure that tells one machine from another of the same name."""
    with torch.random.fork_rng(devices=[]):  # a measurement: leave the global generator as it was
        torch.manual_seed(0)
        return _time_steps(pool, steps, batch_size)


def _time_steps(pool: Pool, steps: int, batch_size: int) -> float:
    model = build_model(pool.inputs, pool.modality, pool.n_classes).train()
    optimizer = adamw(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    y = torch.from_numpy(rng.integers(0, pool.n_classes, batch_size))
    config = TrainConfig()

    def step() -> None:
        x = pool.inputs[torch.from_numpy(rng.integers(0, len(pool), batch_size))]
        training_step(model, optimizer, x, y, config, generator, pool.modality)

    step()  # the first step pays for lazy initialisation
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start)


def steps_for_pace(steps_per_second: float, seconds_per_answer: float = 0.5, low: int = 3, high: int = 25) -> int:
    """Training steps to owe each answer on a machine that trains ``steps_per_second``:
    as many as fit in ``seconds_per_answer`` (half of a brisk person's second a label, so
    the trainer keeps up instead of building a backlog that Enter would wait for), within
    [``low``, ``high``]: at least a few per answer, no more than a fast machine needs."""
    return int(min(high, max(low, steps_per_second * seconds_per_answer)))
