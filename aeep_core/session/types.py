"""The plain data a labelling session hands out: project settings, the batch, the stats.

Kept apart from :mod:`aeep_core.session.session` (which re-exports them) so the types read on
their own and the session module stays about behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from aeep_core.data.backbones import is_backbone, unknown_backbone
from aeep_core.data.progressive import EmbeddingProgress
from aeep_core.learning.training import TrainConfig
from aeep_core.strategies import STRATEGIES


@dataclass
class ProjectSettings:
    """What a project is: its classes and keys, and how the engine runs."""

    # The classes the project starts with; classes added, renamed or merged while labelling
    # live in the store, and session.classes is the list as it is now.
    classes: list[str]
    keys: list[str]  # one key per class, e.g. ["1","2",...,"0","a","b"]
    strategy: str = "aeep"
    batch_size: int = 12
    budget: int | None = None  # stop after this many labels
    seed: int = 0
    device: str = "auto"
    test_dir: str | None = None  # labelled folder for test accuracy
    modality: str = "image"
    # Image folders: "cnn" (the paper's network from scratch), a pretrained backbone under
    # the pairwise head, or "auto" (resolved and stored when the project is created).
    backbone: str = "auto"
    train: dict = field(default_factory=dict)  # TrainConfig overrides
    candidates: int = 10_000
    # Zero-wait mode (aeep_core.session.pipelined): train while the person labels and
    # choose the next batch before the last card. None is "auto", resolved and stored when
    # the project is created: on for networks trained end to end (a retrain takes seconds),
    # off for a head on backbone features, whose round takes under a second and refits on
    # its own confident guesses, which only the plain loop does (TrainConfig.pseudo_label_share).
    # The engine default is the plain loop; the app asks for auto.
    # lookahead: choose the next batch while the person answers the last few cards, so
    # that selection is done by the time they press Enter (BENCHMARKS.md, "Latency").
    pipelined: bool | None = False
    # Training steps owed per answer; 0: measured on this machine when the trainer starts
    # (learning.training.steps_for_pace) and kept in its snapshot, so a resumed session
    # replays exactly what was trained.
    steps_per_label: int = 0
    lookahead: int = 3
    # Seconds the choice of the next batch may wait for training still owed once the
    # lookahead point comes (None: for all of it); then the current model chooses.
    choose_within: float | None = 1.0
    # Pipelined: choose each batch as far ahead as the measured time to choose and the
    # person's pace need (at least ``lookahead`` answers; learning.pipelined.Pace). Off in
    # the engine (then the choice point is fixed by the answers alone, as tests of exact
    # replay need); the app's new projects turn it on.
    follow_pace: bool = False

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProjectSettings:
        """Settings as stored; keys this version does not know are ignored."""
        known = {f.name for f in fields(cls)}
        # Projects from before backbones trained the CNN on every image folder: keep them so.
        return cls(**{"backbone": "cnn", **{k: v for k, v in d.items() if k in known}})

    def validate(self) -> None:
        """Raise ValueError naming the first setting that cannot work."""
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            raise ValueError("classes: give at least two distinct class names")
        if len(self.keys) != len(self.classes) or len(set(self.keys)) != len(self.keys):
            raise ValueError(f"keys: give one distinct key per class ({len(self.classes)} classes, {len(self.keys)} keys)")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        if self.batch_size < 1 or (self.budget is not None and self.budget < 1) or self.candidates < 1:
            raise ValueError("batch_size, budget and candidates must be at least 1")
        if self.backbone not in ("auto", "cnn") and not is_backbone(self.backbone):
            raise ValueError(unknown_backbone(self.backbone))
        TrainConfig(**self.train)  # unknown overrides fail here, not hours later


@dataclass
class BatchItem:
    """One item of a batch, with what the model guessed before the person answered."""

    item_id: int  # index into session.pool
    name: str
    exploration: bool
    predicted: int | None  # None in a cold-start batch
    confidence: float | None
    answer: int | None  # class index, SKIPPED, or None = not answered yet


@dataclass
class Batch:
    """The items of one round (``round`` counts batches from 1), in the order to show them."""

    round: int
    items: list[BatchItem]

    @property
    def complete(self) -> bool:
        """Every item answered (label or skip)."""
        return all(it.answer is not None for it in self.items)


@dataclass
class SessionStats:
    """Figures for the status bar; histories have one entry per round, from round 1."""

    round: int  # the newest round: the open batch's, else the last confirmed (0 before any)
    labelled: int  # answers other than skip, the open batch's included
    skipped: int
    pool_size: int
    budget: int | None
    m: int | None
    mp: float | None
    m_history: list[int | None]
    mp_history: list[float | None]
    entropy_batch: float | None
    entropy_pool: float | None
    batch_accuracy: float | None  # model's guesses on the last labelled batch, made before it saw them
    test_accuracy: float | None
    accuracy_history: list[float | None]
    device: str
    model: str  # what is trained: the CNN, or the pairwise head on a pretrained backbone
    train_s: float | None
    select_s: float | None
    # a trainer in its own process that died and was started again from the store
    trainer_restarts: int = 0
    trainer_failure: str | None = None
    # the pipelined trainer's measurements when it chose the batch on screen
    seconds_per_answer: float | None = None
    seconds_to_choose: float | None = None
    lookahead: int | None = None
    # a photo folder still being embedded in the background (None: every photo is in the pool)
    embedding: EmbeddingProgress | None = None
