"""A real labelling process for the crash test: ``python tests/session_worker.py MODE DATA PROJECT STOP``.

It answers every batch with the ground truth of the generated folder and prints one
JSON line per event, *after* the call that stored it returned.

- ``crash``: first an uninterrupted reference run in ``PROJECT-reference`` (confirm batch
  STOP, print batch STOP+1 as ``reference``); then the run to be killed in PROJECT:
  confirm batches 1..STOP-1, answer batch STOP slowly and never finish it (the test
  kills it with SIGKILL in the middle).
- ``resume``: once a line arrives on stdin, reopen PROJECT, print the restored batch,
  finish it, print the next one.

With ``AEEP_SEPARATE_PROCESS=1`` in the environment, sessions train in a child process
(as the app does) and each batch event names the trainer's pid.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch

from aeep_core.session import SKIPPED, LabellingSession, ProjectSettings

SETTINGS = ProjectSettings(
    classes=["class0", "class1", "class2"],
    keys=["1", "2", "3"],
    strategy="aeep",
    batch_size=6,
    seed=3,
    device="cpu",
    train={"min_steps": 10, "max_steps": 10},
)


SEPARATE = os.environ.get("AEEP_SEPARATE_PROCESS") == "1"


def open_session(data: Path, project: Path, settings: ProjectSettings | None = None) -> LabellingSession:
    return LabellingSession.open(data, settings, project_dir=project, separate_process=SEPARATE, trainer_threads=1)


def say(**event) -> None:
    print(json.dumps(event), flush=True)


def truth(session: LabellingSession, position: int) -> int:
    return int(session.pool.labels[session.batch.items[position].item_id])


def finish_batch(session: LabellingSession, quiet: bool = False) -> None:
    for pos, item in enumerate(session.batch.items):
        if item.answer is None:
            answer = SKIPPED if pos == 5 else truth(session, pos)  # one skip per batch
            session.label(pos, answer)
            if not quiet:
                say(event="label", round=session.batch.round, position=pos, name=item.name, answer=answer)
    session.confirm_batch()


def next_batch(session: LabellingSession) -> None:
    batch = session.prepare_next_batch()
    say(
        event="batch",
        round=batch.round,
        names=[it.name for it in batch.items],
        exploration=[it.exploration for it in batch.items],
        strategy=session.learner.strategy.state_dict(),
        trainer=session.engine.trainer_pid,
    )


def main(mode: str, data: Path, project: Path, stop: int) -> None:
    torch.set_num_threads(1)
    if mode == "resume":
        sys.stdin.readline()  # started early so the imports overlap the other run; go on cue
        session = open_session(data, project)
        b = session.batch
        say(event="restored", round=b.round, names=[it.name for it in b.items], answers=[it.answer for it in b.items])
        finish_batch(session)
        next_batch(session)
        return
    # The reference shares this process (one import of torch, not two); it cannot leak
    # into the run below: every random choice is seeded from (seed, round).
    with open_session(data, project.with_name(project.name + "-reference"), SETTINGS) as ref:
        for _ in range(stop):
            ref.prepare_next_batch()
            finish_batch(ref, quiet=True)
        b = ref.prepare_next_batch()
        say(
            event="reference",
            round=b.round,
            names=[it.name for it in b.items],
            exploration=[it.exploration for it in b.items],
            strategy=ref.learner.strategy.state_dict(),
        )
    session = open_session(data, project, SETTINGS)
    for _ in range(stop - 1):
        next_batch(session)
        finish_batch(session)
    next_batch(session)
    wrong = (truth(session, 0) + 1) % 3
    session.label(0, wrong)  # a slip, taken back: the store keeps both rows
    session.undo()
    for pos in range(len(session.batch.items) - 1):
        session.label(pos, truth(session, pos))
        say(
            event="label", round=session.batch.round, position=pos, name=session.batch.items[pos].name, answer=truth(session, pos)
        )
        time.sleep(0.3)
    say(event="waiting")
    time.sleep(600)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
