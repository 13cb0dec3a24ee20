"""One closed-loop session on a board: runs with learning on and/or off, telemetry, plots, report.

``glocal run`` and ``glocal demo`` both end here. The out folder receives ``telemetry.jsonl``
(one line per control step of every run), ``summary.json``, the PNGs of :mod:`deploy.report`,
``report.md`` and, when asked for, ``episode.gif`` (the first episode of the first run).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import robot_env
from deploy.engines import BoardController
from deploy.errors import DeployError
from deploy.faults import route_faults
from deploy.report import markdown, write_gif, write_plots
from deploy.runner import RunResult, check_episodes, check_step_options, run

LEARNING_MODES = {"on": (True,), "off": (False,), "both": (True, False)}


def board_session(
    client: Any,
    env_id: str,
    episodes: int,
    fault_specs: Sequence[str],
    out: Path,
    learning: str = "both",
    steps: int | None = None,
    seed: int = 0,
    image_meta: dict[str, Any] | None = None,
    link: Any = None,
    gif: bool = False,
    title: str = "glocal run",
    intro: str = "",
    step_deadline: float | None = None,
    on_miss: str = "hold",
) -> dict[str, Any]:
    """Run the closed loop on the board behind ``client`` and write the out folder."""
    if learning not in LEARNING_MODES:
        raise DeployError(f"--learning must be on, off or both, not {learning!r}.")

    plan = route_faults(fault_specs)
    # A run that cannot start is refused before the out folder is touched, so a mistyped env id
    # never truncates an earlier run's telemetry.
    check_episodes(episodes)
    check_step_options(step_deadline, on_miss)
    robot_env.make(env_id).close()
    controller = BoardController.for_image(client, image_meta or {})
    out.mkdir(parents=True, exist_ok=True)
    results: list[RunResult] = []
    with open(out / "telemetry.jsonl", "w") as telemetry:
        for k, on in enumerate(LEARNING_MODES[learning]):
            label = f"learning {'on' if on else 'off'}"
            print(f"{label}: {episodes} episodes of {env_id}", file=sys.stderr)
            results.append(
                run(
                    controller,
                    env_id,
                    plan,
                    episodes,
                    seed=seed,
                    learning=on,
                    steps=steps,
                    label=label,
                    telemetry=telemetry,
                    probe=True,
                    frames_every=4 if gif and k == 0 else 0,
                    board_client=client,
                    link=link,
                    step_deadline=step_deadline,
                    on_miss=on_miss,
                )
            )
    images = write_plots(results, out)
    gif_path = write_gif(results[0].frames, out / "episode.gif") if gif else None
    summary = {
        "env": env_id,
        "episodes": episodes,
        "seed": seed,
        "faults": list(plan.records),
        "runs": [r.summary() for r in results],
        "files": sorted(p.name for p in out.iterdir()) + (["summary.json"]),
    }
    if gif_path is not None:
        intro += f"\n\n![one episode]({gif_path.name})"
    (out / "report.md").write_text(markdown(title, intro, results, images))
    summary["files"] = sorted({*summary["files"], "report.md"})
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary
