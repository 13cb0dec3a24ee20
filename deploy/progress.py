"""Progress bars on stderr (tqdm) for flashing and for episodes.

tqdm draws a bar when it advances (at most every 0.1 s) and once more when it closes, so a bar
that reaches its total by ``update`` and is then closed prints its 100 % line twice wherever
stderr is not a terminal that overwrites it (a log, CI). :func:`advance` moves the last step
without drawing and lets ``close`` draw it, once.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


def advance(bar: Any, n: int) -> None:
    """Move ``bar`` to ``n``; reaching its total closes it, which draws the last line once."""
    if n >= bar.total:
        bar.n = n
        bar.close()
    else:
        bar.update(n - bar.n)


class EpisodeBar:
    """A progress callback ``(done, total, row)``: a bar of episodes with ``row`` beside it,
    made on the first episode so that a refused option prints no empty bar."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self.bar: Any = None

    def __call__(self, done: int, total: int, row: str) -> None:
        self.bar = self.bar or tqdm(total=total, file=sys.stderr, desc=self.desc, unit="episode")
        self.bar.set_postfix_str(row, refresh=False)
        advance(self.bar, done)

    def __enter__(self) -> EpisodeBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


class ReturnBar(EpisodeBar):
    """The runner's ``on_episode(e, return)`` as a bar with the last and the running mean
    return of ``episodes`` episodes."""

    def __init__(self, desc: str, episodes: int) -> None:
        super().__init__(desc)
        self.episodes = episodes
        self.returns: list[float] = []

    def episode(self, e: int, episode_return: float) -> None:
        self.returns.append(episode_return)
        mean = sum(self.returns) / len(self.returns)
        row = f"return {episode_return:.1f}, mean {mean:.1f}"
        self(len(self.returns), self.episodes, row)
