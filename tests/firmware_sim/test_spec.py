"""The two overflow helpers at their edges, the lazy-decay table, and the contract's one home."""

import numpy as np
import pytest

from firmware_sim import spec
from protocol import numeric


@pytest.mark.parametrize("bits", [8, 16, 24, 32])
def test_saturate_clamps_exactly_at_the_signed_edges(bits):
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    values = np.array([lo - 1, lo, lo + 1, -1, 0, hi - 1, hi, hi + 1], dtype=np.int64)
    assert spec.saturate(values, bits).tolist() == [lo, lo, lo + 1, -1, 0, hi - 1, hi, hi]


@pytest.mark.parametrize("bits", [8, 16, 24])
def test_wrap_is_twos_complement_at_the_edges(bits):
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    values = np.array([hi + 1, lo - 1, hi, lo, 2**bits + 5], dtype=np.int64)
    assert spec.wrap(values, bits).tolist() == [lo, hi, hi, lo, 5]


def test_saturate_in_place_writes_into_out():
    v = np.array([2**23, -(2**23) - 7], dtype=np.int64)
    spec.saturate(v, numeric.MEMBRANE_BITS, out=v)
    assert v.tolist() == [numeric.V_MAX, numeric.V_MIN]


def test_lambda_powers_follow_the_floor_recurrence_by_hand():
    # lam = 45000/65536: p1 = 45000, p2 = floor(45000^2 / 2^16) = 30899,
    # p3 = floor(30899 * 45000 / 2^16) = 21216
    table = numeric.lambda_powers(45000)
    assert table[:4] == (65536, 45000, 30899, 21216)
    assert len(table) == numeric.AGE_MAX + 1
    assert np.all(np.diff(table) <= 0)


def test_lambda_one_never_decays_and_zero_forgets_at_once():
    assert set(numeric.lambda_powers(numeric.LAMBDA_ONE)) == {65536}
    assert numeric.lambda_powers(0)[:3] == (65536, 0, 0)
    assert len(numeric.lambda_powers(0)) == numeric.AGE_MAX + 1


def test_the_engine_table_is_the_contract_table_and_read_only():
    table = spec.lambda_table(45000)
    assert table.dtype == np.int64 and tuple(table.tolist()) == numeric.lambda_powers(45000)
    with pytest.raises(ValueError):
        table[0] = 0
