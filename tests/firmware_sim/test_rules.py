"""Design rules: a good image passes; each broken limit is named in one sentence."""

import numpy as np
import pytest

from deploy.chain import Layer
from firmware_sim import rules
from firmware_sim.engine import Engine
from firmware_sim.errors import BoardError, DesignRuleError
from firmware_sim.profiles import get_profile
from tests.firmware_sim.conftest import chain_image


@pytest.fixture
def image():
    rng = np.random.default_rng(3)
    layers = [
        Layer(rng.integers(-5, 5, (4, 20)).astype(np.int8)),
        Layer(np.ones((20, 40), np.int8)),
    ]
    return chain_image(layers)


def test_a_good_image_passes_and_splits_wide_layers(image):
    assert rules.violations(image, get_profile("small")) == []
    # 40 neurons > 32 per core: layer 1 takes two cores, and layer 0 routes into both
    assert [c["n_neurons"] for c in image.cores] == [20, 32, 8]
    assert image.cores[0]["route_dst_core"].tolist() == [1] * 20 + [2] * 20
    assert image.cores[0]["route_dst_axon"].tolist() == list(range(20)) * 2


def broken(image, change):
    change(image)
    with pytest.raises(DesignRuleError) as info:
        rules.check(image, get_profile("small"))
    message = str(info.value)
    assert message.endswith(".") and "\n" not in message
    return message


def test_wrong_profile(image):
    assert "profile 'tianjic'" in broken(image, lambda i: setattr(i, "profile", "tianjic"))


def test_too_many_axons(image):
    def grow(i):
        i.cores[0]["n_axons"] = 33

    assert "33 axons" in broken(image, grow)


def test_table_dtype_is_checked(image):
    def retype(i):
        i.cores[0]["theta"] = i.cores[0]["theta"].astype(np.int64)

    assert "'theta'" in broken(image, retype) and "int32" in broken(image, retype)


@pytest.mark.parametrize(
    ("core", "table", "index", "value", "said"),
    [
        (2, "theta", 0, 0, "threshold"),
        (0, "route_dst_core", 0, 7, "core 7"),
        (0, "route_dst_axon", 1, 0, "two sources"),
        (0, "lam", 0, 70000, "lam=70000"),
        (0, "mod_src", slice(None), (2, 31), "modulator"),
        (1, "enc_src", 0, 9, "observation index"),
    ],
)
def test_a_table_value_out_of_range(image, core, table, index, value, said):
    def edit(i):
        i.cores[core][table][index] = value

    assert said in broken(image, edit)


def test_ticks_per_step(image):
    assert "ticks_per_step" in broken(image, lambda i: i.board.update(ticks_per_step=0))


def test_engine_refuses_a_broken_image(image):
    image.cores[0]["decay_shift"][0] = 30
    with pytest.raises(BoardError, match="leak shift"):
        Engine(image)


def test_every_rule_is_one_named_function():
    names = [rule.__name__ for rule in (*rules.STRUCTURAL_RULES, *rules.VALUE_RULES)]
    assert len(names) == len(set(names)) == 13
