"""Data for the scenarios: Omniglot (standard folder layout, zipped or extracted) and 8x8 digits.

Omniglot's layout is ``<set>/<Alphabet>/characterNN/<id>_<drawer>.png``; the loader reads every
``.zip`` and every extracted folder under the data root, keys a character by
``(alphabet, characterNN)`` (the two "small" background sets share Greek and Latin folders, so
duplicates are dropped) and downsamples each 105x105 drawing to ``size x size`` floats in
``[0, 1]`` with ink = 1. Characters, not drawings, are split into meta-train and meta-test,
either character by character (meta-test characters come from alphabets seen in meta-training)
or alphabet by alphabet (the standard split: meta-test alphabets are never seen); meta-train
classes are augmented by the standard rotations (0, 90, 180, 270 degrees: each a new class).

The data root is ``$GLOCAL_DATA/omniglot`` when the variable is set, else
``../shared/data/omniglot`` beside the repository.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from train.errors import TrainError

DATA_ENV = "GLOCAL_DATA"
ROTATIONS = (0, 1, 2, 3)  # quarter turns
# The 20 alphabets of Lake et al.'s images_evaluation set: the meta-test of the standard split.
EVALUATION_ALPHABETS = frozenset(
    {
        "Angelic", "Atemayar_Qelisayer", "Atlantean", "Aurek-Besh", "Avesta", "Ge_ez",
        "Glagolitic", "Gurmukhi", "Kannada", "Keble", "Malayalam", "Manipuri", "Mongolian",
        "Old_Church_Slavonic_(Cyrillic)", "Oriya", "Sylheti", "Syriac_(Serto)", "Tengwar",
        "Tibetan", "ULOG",
    }
)  # fmt: skip


def default_data_root() -> Path:
    """``$GLOCAL_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def omniglot_root(root: str | Path | None = None) -> Path:
    """The Omniglot folder: ``root`` itself if given, else ``default_data_root()/omniglot``."""
    return Path(root) if root is not None else default_data_root() / "omniglot"


def _character_key(parts: tuple[str, ...]) -> tuple[str, str] | None:
    """``(alphabet, character)`` from a path ending ``Alphabet/characterNN/file.png``."""
    if len(parts) < 3 or not parts[-1].lower().endswith(".png"):
        return None
    return parts[-3], parts[-2]


def _iter_pngs(root: Path) -> Iterator[tuple[tuple[str, str], str, bytes]]:
    """(character key, file name, PNG bytes) for every drawing in the zips and folders of root."""
    for archive in sorted(root.rglob("*.zip")):
        try:
            with zipfile.ZipFile(archive) as zf:
                for name in sorted(zf.namelist()):
                    key = _character_key(PurePosixPath(name).parts)
                    if key is not None:
                        yield key, PurePosixPath(name).name, zf.read(name)
        except zipfile.BadZipFile as error:
            raise TrainError(
                f"{archive} is not a readable zip ({error}); re-download it."
            ) from None
    for png in sorted(root.rglob("*.png")):
        key = _character_key(png.relative_to(root).parts)
        if key is not None:
            yield key, png.name, png.read_bytes()


def decode_image(png: bytes, size: int) -> np.ndarray:
    """One Omniglot drawing (PNG bytes) as ``size x size`` float32 in [0, 1], ink = 1: box
    downsampling, as every scenario image is made."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        gray = image.convert("L").resize((size, size), Image.Resampling.BOX)
    return 1.0 - np.asarray(gray, dtype=np.float32) / 255.0  # ink (black) = 1


@dataclass(frozen=True)
class CharacterSet:
    """Drawings per character: ``images[c]`` is (n_drawings, size, size) float32 in [0, 1]."""

    keys: list[tuple[str, str]]
    images: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.keys)


def load_omniglot(root: str | Path | None = None, size: int = 28) -> CharacterSet:
    """Every distinct character under ``root`` (zips and extracted folders), downsampled."""
    root = omniglot_root(root)
    if not root.is_dir():
        raise TrainError(
            f"no Omniglot folder at {root}; put the Omniglot zips there or set ${DATA_ENV}."
        )
    drawings: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for key, name, png in _iter_pngs(root):
        per = drawings.setdefault(key, {})
        if name not in per:  # the same drawing in two sets is one drawing
            per[name] = decode_image(png, size)
    if not drawings:
        raise TrainError(f"no Omniglot drawings (Alphabet/characterNN/*.png) found under {root}.")
    keys = sorted(drawings)
    images = [np.stack([drawings[k][n] for n in sorted(drawings[k])]) for k in keys]
    return CharacterSet(keys, images)


def split_characters(
    chars: CharacterSet, test_fraction: float, seed: int
) -> tuple[CharacterSet, CharacterSet]:
    """Split characters (not drawings) into meta-train and meta-test, seeded."""
    if not 0.0 < test_fraction < 1.0:
        raise TrainError(f"the test fraction must lie in (0, 1), not {test_fraction}.")
    order = np.random.default_rng(seed).permutation(len(chars))
    n_test = max(1, int(round(len(chars) * test_fraction)))
    in_test = np.zeros(len(chars), bool)
    in_test[order[:n_test]] = True
    return _subset(chars, (~in_test).tolist()), _subset(chars, in_test.tolist())


def _subset(chars: CharacterSet, keep: list[bool]) -> CharacterSet:
    idx = [i for i, k in enumerate(keep) if k]
    return CharacterSet([chars.keys[i] for i in idx], [chars.images[i] for i in idx])


def split_alphabets(
    chars: CharacterSet, test_fraction: float, seed: int
) -> tuple[CharacterSet, CharacterSet]:
    """Split whole alphabets into meta-train and meta-test: meta-test alphabets are never seen.

    Where Lake et al.'s evaluation alphabets are present (a full download), this is their
    background/evaluation split and ``test_fraction`` and ``seed`` are not used. Otherwise (the
    shared subset holds background alphabets only) alphabets are taken in a seeded order, each
    that brings the meta-test set nearer ``test_fraction`` of the characters.
    """
    if not 0.0 < test_fraction < 1.0:
        raise TrainError(f"the test fraction must lie in (0, 1), not {test_fraction}.")
    alphabets = sorted({a for a, _ in chars.keys})
    test = set(EVALUATION_ALPHABETS.intersection(alphabets))
    if not test:
        size = {a: sum(k[0] == a for k in chars.keys) for a in alphabets}
        short = test_fraction * len(chars)  # meta-test characters still wanted
        for i in np.random.default_rng(seed).permutation(len(alphabets)):
            if abs(short - size[alphabets[i]]) < abs(short):
                test.add(alphabets[i])
                short -= size[alphabets[i]]
    if len(test) == len(alphabets):
        raise TrainError(f"no alphabet is left for meta-training among {alphabets}.")
    in_test = [key[0] in test for key in chars.keys]
    return _subset(chars, [not t for t in in_test]), _subset(chars, in_test)


SPLITS = {"characters": split_characters, "alphabets": split_alphabets}
"""How meta-test is kept apart: ``name -> split(chars, test_fraction, seed)``."""


def split_meta(
    chars: CharacterSet, split: str, test_fraction: float, seed: int
) -> tuple[CharacterSet, CharacterSet]:
    """Meta-train and meta-test by the named split (``characters`` or ``alphabets``)."""
    if split not in SPLITS:
        raise TrainError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}.")
    return SPLITS[split](chars, test_fraction, seed)


def rotate_classes(chars: CharacterSet) -> CharacterSet:
    """Each character at 0, 90, 180 and 270 degrees, each rotation its own class."""
    keys, images = [], []
    for key, imgs in zip(chars.keys, chars.images, strict=True):
        for quarter in ROTATIONS:
            keys.append((key[0], f"{key[1]}@rot{90 * quarter}"))
            images.append(np.rot90(imgs, quarter, axes=(1, 2)).copy())
    return CharacterSet(keys, images)


def sample_episodes(
    chars: CharacterSet, n_way: int, k_shot: int, n_query: int, batch: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A batch of N-way K-shot episodes.

    Returns ``support`` (batch, n_way * k_shot, H, W), shown class by class (label of item ``i``
    is ``i // k_shot``), and ``query`` (batch, n_way * n_query, H, W) with label ``i // n_query``.
    """
    if n_way > len(chars):
        raise TrainError(f"{n_way}-way episodes need {n_way} characters; the set has {len(chars)}.")
    need = k_shot + n_query
    support, query = [], []
    for _ in range(batch):
        classes = rng.choice(len(chars), size=n_way, replace=False)
        s_ep, q_ep = [], []
        for c in classes:
            imgs = chars.images[c]
            if len(imgs) < need:
                raise TrainError(
                    f"character {chars.keys[c]} has {len(imgs)} drawings; episodes need {need}."
                )
            pick = rng.choice(len(imgs), size=need, replace=False)
            s_ep.append(imgs[pick[:k_shot]])
            q_ep.append(imgs[pick[k_shot:]])
        support.append(np.concatenate(s_ep))
        query.append(np.concatenate(q_ep))
    return np.stack(support), np.stack(query)


RUN_LABELS = "class_labels.txt"


@dataclass(frozen=True)
class OneShotRun:
    """One run of Lake et al.'s one-shot classification: one training image per class, in
    file-name order (``training/class01.png`` is class 0), and the test images (file-name
    order) with the index of the class each belongs to."""

    name: str
    support: np.ndarray  # (N, size, size)
    query: np.ndarray  # (Q, size, size)
    labels: np.ndarray  # (Q,) int64, index into support


def read_runs(folder: str | Path, size: int) -> list[OneShotRun]:
    """Every ``runNN`` under ``folder`` in the "all runs" layout of Lake et al. (2015):
    ``runNN/class_labels.txt`` pairs each ``test/itemXX.png`` with its ``training/classYY.png``
    (a line may also name them with the run folder in front, as the released runs do)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TrainError(f"no one-shot runs folder at {folder}.")
    runs = sorted(run for run in folder.iterdir() if (run / RUN_LABELS).is_file())
    if not runs:
        raise TrainError(
            f"{folder} holds no runNN/{RUN_LABELS}: expected Lake et al.'s all-runs layout "
            "(runNN/class_labels.txt, runNN/training/, runNN/test/)."
        )
    return [_read_run(run, size) for run in runs]


def _read_run(run: Path, size: int) -> OneShotRun:
    labels_file = run / RUN_LABELS
    pairs = []
    for number, line in enumerate(labels_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        names = line.split()
        if len(names) != 2:
            raise TrainError(
                f"{labels_file} line {number} is not 'test/itemXX.png training/classYY.png'."
            )
        pairs.append(tuple(_run_file(run, name, labels_file) for name in names))
    if not pairs:
        raise TrainError(f"{labels_file} pairs no test image with a training image.")
    training = sorted({train for _, train in pairs})
    pairs.sort()

    def decode_all(paths: list[Path]) -> np.ndarray:
        return np.stack([decode_image(path.read_bytes(), size) for path in paths])

    return OneShotRun(
        run.name,
        decode_all(training),
        decode_all([test for test, _ in pairs]),
        np.array([training.index(train) for _, train in pairs], dtype=np.int64),
    )


def _run_file(run: Path, name: str, labels_file: Path) -> Path:
    parts = PurePosixPath(name).parts
    if parts and parts[0] == run.name:  # "run01/test/item01.png", as released
        parts = parts[1:]
    path = run.joinpath(*parts)
    if not path.is_file():
        raise TrainError(f"{labels_file} names {name}, which is not a file in {run}.")
    return path


def load_digits_split(test_fraction: float = 0.3, seed: int = 0) -> tuple[np.ndarray, ...]:
    """scikit-learn's 8x8 digits in [0, 1]: ``(x_train, y_train, x_test, y_test)``, seeded split."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def permutations(n_tasks: int, n_features: int, seed: int) -> list[np.ndarray]:
    """Task 0 is the identity; tasks 1.. permute the input pixels (seeded)."""
    rng = np.random.default_rng(seed)
    return [np.arange(n_features)] + [rng.permutation(n_features) for _ in range(n_tasks - 1)]
