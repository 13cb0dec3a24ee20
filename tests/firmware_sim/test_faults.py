"""Board faults: declarative, seeded, visible in telemetry, and they do what they say."""

import numpy as np
import pytest

from deploy.chain import Layer
from firmware_sim.engine import Engine
from firmware_sim.errors import FaultError
from firmware_sim.faults import Fault, parse_fault
from tests.firmware_sim.conftest import chain_image, random_layers, weights


@pytest.fixture
def engine():
    rng = np.random.default_rng(11)
    return Engine(chain_image(random_layers(rng, [8, 32, 32, 4])))


def drive(engine, steps=4, seed=0):
    rng = np.random.default_rng(seed)
    return [engine.step(rng.normal(0, 60, engine.obs_dim)) for _ in range(steps)]


def test_parse_fault_spec():
    fault = parse_fault("board:stuck-value:core=1,value=-3,fraction=0.5,onset=9,seed=4")
    assert fault == Fault("stuck-value", 1, None, -3.0, 9, None, 4, {"fraction": 0.5})
    assert parse_fault("core-down:core=all").target == "all"
    assert parse_fault("dead-neuron:core=0,neuron=3").neuron == 3


def test_keys_are_case_insensitive_and_a_repeated_key_is_refused():
    assert parse_fault("board:dead-neuron:CORE=1,Neuron=3").target == 1
    with pytest.raises(FaultError, match="'board:dead-neuron:core=0,Core=1' sets 'core' twice"):
        parse_fault("board:dead-neuron:core=0,Core=1")


def test_fault_record_round_trips_in_the_protocol_shape():
    fault = parse_fault("always-fire:core=2,neuron=4,onset=3,duration=5,seed=1")
    record = fault.to_dict()
    assert record["target"] == {"core": 2, "neuron": 4} and record["domain"] == "board"
    assert Fault.from_dict(record) == fault


@pytest.mark.parametrize(
    "text", ["board:melt", "dead-neuron:fraction=2", "weight-flip:rate=0.5", "x:y:z", "a:b"]
)
def test_bad_fault_specs_are_one_sentence(text):
    with pytest.raises(FaultError) as info:
        parse_fault(text)
    assert str(info.value).endswith(".")


def test_fault_on_missing_core_is_refused(engine):
    with pytest.raises(FaultError, match="core 7"):
        engine.inject(Fault("core-down", 7))


def test_same_seed_same_run(engine):
    twin = Engine(engine.image)
    for board in (engine, twin):
        board.inject(Fault("weight-flip", "all", magnitude=1e-3, seed=5))
        board.inject(Fault("input-noise", "all", magnitude=10.0, seed=6))
    assert np.array_equal(np.array(drive(engine)), np.array(drive(twin)))
    assert engine.telemetry.bit_flips == twin.telemetry.bit_flips > 0
    assert np.array_equal(engine.weights, twin.weights)


def test_dead_and_always_firing_neurons(make_engine):
    layer = Layer(weights([1, 1, 1]), theta=256, decay_shift=0)
    board = make_engine([layer])
    board.inject(Fault("dead-neuron", 0, neuron=0))
    board.inject(Fault("always-fire", 0, neuron=2))
    spikes = board.run_tick(np.array([1]))  # every neuron would fire on x = 1
    assert spikes[0, :3].tolist() == [False, True, True]
    spikes = board.run_tick(np.array([0]))  # nothing drives them now
    assert spikes[0, :3].tolist() == [False, False, True]


def test_stuck_zero_silences_all_synapses(make_engine):
    board = make_engine([Layer(weights([5, 5]), theta=10**6, decay_shift=23)])
    board.inject(Fault("stuck-zero", 0, magnitude=1.0))
    board.run_tick(np.array([1]))
    assert board.v_mem[0, :2].tolist() == [0, 0]
    assert board.weights[0, :2].tolist() == [5, 5]  # memory intact: the synapse is stuck


def test_stuck_value_replaces_the_effective_weight(make_engine):
    board = make_engine([Layer(weights([5]), theta=10**6, decay_shift=23)])
    board.inject(Fault("stuck-value", 0, magnitude=-2.0, params={"fraction": 1.0}))
    board.run_tick(np.array([3]))
    assert board.v_mem[0, 0] == 3 * -2 * 256


def test_onset_and_duration_count_control_steps(make_engine):
    board = make_engine([Layer(weights([1]), theta=256, decay_shift=0)], ticks_per_step=2)
    board.inject(Fault("core-down", 0, onset=2, duration=2))
    counts = [board.step(np.array([1.0])).tolist() for _ in range(5)]
    assert counts == [[2.0], [2.0], [0.0], [0.0], [2.0]]


def test_core_down_freezes_the_core(engine):
    drive(engine, 2)
    frozen = engine.v_mem[1].copy()
    spikes_before = engine.telemetry.spikes.copy()
    engine.inject(Fault("core-down", 1))
    drive(engine, 2)
    assert np.array_equal(engine.v_mem[1], frozen)
    assert engine.telemetry.spikes[1] == spikes_before[1]
    assert engine.telemetry.faults_active == 1


def test_trace_flips_stay_in_16_bits(engine):
    engine.learning = True
    engine.inject(Fault("trace-flip", "all", magnitude=1e-2, seed=2))
    drive(engine, 3)
    assert engine.telemetry.bit_flips > 0
    assert engine.traces.min() >= -32768 and engine.traces.max() <= 32767
    assert engine.traces.any()


def test_clear_faults(engine):
    engine.inject(Fault("core-down", "all"))
    assert engine.telemetry.faults_active == 1
    engine.clear_faults()
    assert engine.telemetry.faults_active == 0 and engine.active_faults() == []


def test_spec_syntax_of_docs_faults_md():
    fault = parse_fault("BOARD:Weight-Flip: core=2 , rate=1e-5, onset=10..20, seed=3")
    assert fault.kind == "weight-flip" and fault.target == 2 and fault.magnitude == 1e-5
    assert 10 <= fault.onset <= 20
    assert parse_fault("board:weight-flip:onset=10..20,seed=3").onset == fault.onset
    assert parse_fault("input-noise").magnitude == 0.1  # the kind's default
    with pytest.raises(FaultError, match="takes the keys"):
        parse_fault("core-down:fraction=0.5")


def test_string_targets_as_docs_faults_md_writes_them():
    assert Fault.from_dict({"kind": "core-down", "target": "core=3"}).target == 3
    assert Fault.from_dict({"kind": "core-down", "target": "all"}).target == "all"
