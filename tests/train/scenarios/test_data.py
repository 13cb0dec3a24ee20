from __future__ import annotations

import numpy as np
import pytest

from tests.train.scenarios.conftest import drawing, png_bytes
from train.errors import TrainError
from train.scenarios.data import (
    CharacterSet,
    decode_image,
    default_data_root,
    load_digits_split,
    load_omniglot,
    permutations,
    rotate_classes,
    sample_episodes,
    split_alphabets,
    split_characters,
    split_meta,
)


def test_loader_reads_zips_and_folders_and_deduplicates(omniglot_dir):
    chars = load_omniglot(omniglot_dir, size=14)
    assert chars.keys == [("A", f"character{k:02d}") for k in (1, 2, 3)] + [
        ("B", f"character{k:02d}") for k in (1, 2, 3)
    ]
    assert all(imgs.shape == (4, 14, 14) for imgs in chars.images)
    img = chars.images[0][0]
    assert img.min() >= 0.0 and img.max() <= 1.0 and img.max() > 0.5  # ink is 1
    assert img.mean() < 0.5  # mostly paper


def test_decode_image_is_the_loaders_decoder(omniglot_dir):
    image = decode_image(png_bytes(drawing(0, 0)), 14)
    np.testing.assert_array_equal(image, load_omniglot(omniglot_dir, size=14).images[0][0])


def test_missing_or_empty_data_is_one_clear_error(tmp_path):
    with pytest.raises(TrainError, match="no Omniglot folder"):
        load_omniglot(tmp_path / "nowhere")
    with pytest.raises(TrainError, match="no Omniglot drawings"):
        load_omniglot(tmp_path)
    (tmp_path / "bad.zip").write_bytes(b"nope")
    with pytest.raises(TrainError, match="not a readable zip"):
        load_omniglot(tmp_path)


def test_split_is_by_character_and_rotations_are_new_classes(omniglot_dir):
    chars = load_omniglot(omniglot_dir, size=14)
    train, test = split_characters(chars, 0.33, seed=0)
    assert set(train.keys).isdisjoint(test.keys) and len(train) + len(test) == len(chars)
    assert split_characters(chars, 0.33, seed=0)[1].keys == test.keys
    rot = rotate_classes(train)
    assert len(rot) == 4 * len(train)
    np.testing.assert_array_equal(rot.images[1][0], np.rot90(train.images[0][0]))
    with pytest.raises(TrainError, match="test fraction"):
        split_characters(chars, 1.5, seed=0)


def _alphabets(chars: CharacterSet) -> set[str]:
    return {alphabet for alphabet, _ in chars.keys}


def test_alphabet_split_keeps_meta_test_alphabets_unseen(omniglot_dir):
    chars = load_omniglot(omniglot_dir, size=14)
    train, test = split_meta(chars, "alphabets", 0.33, seed=0)
    assert len(_alphabets(test)) == 1 and _alphabets(train).isdisjoint(_alphabets(test))
    assert len(train) + len(test) == len(chars)
    with pytest.raises(TrainError, match="unknown split 'drawers'"):
        split_meta(chars, "drawers", 0.33, seed=0)


def test_lake_evaluation_alphabets_are_the_meta_test_where_present():
    images = [np.zeros((2, 4, 4), np.float32)] * 3
    chars = CharacterSet([("Latin", "c1"), ("Tengwar", "c1"), ("ULOG", "c1")], images)
    train, test = split_alphabets(chars, 0.9, seed=5)  # fraction and seed: not used
    assert _alphabets(train) == {"Latin"} and _alphabets(test) == {"Tengwar", "ULOG"}
    with pytest.raises(TrainError, match="no alphabet is left"):
        split_alphabets(CharacterSet(chars.keys[1:], images[1:]), 0.33, seed=0)


def test_episodes_have_the_promised_shape_and_classes(omniglot_dir):
    chars = load_omniglot(omniglot_dir, size=14)
    rng = np.random.default_rng(0)
    s, q = sample_episodes(chars, 3, 1, 2, batch=5, rng=rng)
    assert s.shape == (5, 3, 14, 14) and q.shape == (5, 6, 14, 14)
    with pytest.raises(TrainError, match="need 7 characters"):
        sample_episodes(chars, 7, 1, 1, 1, rng)
    with pytest.raises(TrainError, match="episodes need 5"):
        sample_episodes(chars, 2, 1, 4, 1, rng)


def test_digits_and_permutations():
    x_tr, y_tr, x_te, y_te = load_digits_split(seed=0)
    assert x_tr.shape[1] == 64 and len(x_tr) + len(x_te) == 1797
    assert x_tr.min() >= 0.0 and x_tr.max() <= 1.0
    perms = permutations(4, 64, seed=1)
    assert np.array_equal(perms[0], np.arange(64))
    assert all(sorted(p.tolist()) == list(range(64)) for p in perms)
    assert not np.array_equal(perms[1], perms[2])


def test_shared_omniglot_when_present():
    root = default_data_root() / "omniglot"
    if not root.is_dir():
        pytest.skip(f"the shared Omniglot data is absent ({root})")
    chars = load_omniglot(root, size=28)
    assert len(chars) == 242  # small1 + small2 background sets, de-duplicated
    assert all(len(imgs) == 20 for imgs in chars.images)
    train, test = split_alphabets(chars, 0.33, seed=0)
    assert _alphabets(test) == {"Greek", "Korean", "Latin"} and len(test) == 90
