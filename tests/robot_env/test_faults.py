"""The robot fault record and its spec syntax: round trips and one-sentence errors."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from robot_env import FaultSpecError, RobotFault, parse_robot_fault
from robot_env.faults import KINDS, actuate, actuator_model, invert_actuator


def test_keys_are_case_insensitive_and_a_repeated_key_is_refused():
    fault = parse_robot_fault("Robot:Gain-Loss:JOINT=1,Gain=0.3,Onset=100")
    assert (fault.kind, fault.target, fault.magnitude, fault.onset) == (
        "gain-loss",
        "joint=1",
        0.3,
        100,
    )
    with pytest.raises(FaultSpecError, match="sets 'gain' twice"):
        parse_robot_fault("robot:gain-loss:gain=0.3,GAIN=0.4")


def test_spec_from_the_issue_parses_to_the_shared_record():
    record = parse_robot_fault("robot:gain-loss:joint=1,gain=0.3,onset=100").to_dict()
    assert record == {
        "domain": "robot",
        "kind": "gain-loss",
        "target": "joint=1",
        "magnitude": 0.3,
        "onset": 100,
        "duration": None,
        "seed": 0,
    }


def test_defaults_window_onset_and_duration():
    fault = parse_robot_fault("robot:delay:onset=50..150,duration=20,seed=7")
    assert (fault.magnitude, fault.onset, fault.duration, fault.seed) == (3.0, (50, 150), 20, 7)
    assert fault.target == "all"
    assert parse_robot_fault("robot:dead-motor:joint=0").magnitude is None


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("robot", "DOMAIN:KIND"),
        ("board:stuck-at:core=1", "not 'robot'"),
        ("robot:melted:joint=1", "unknown robot fault kind"),
        ("robot:gain-loss:joint=1,gian=0.3", "does not take gian"),
        ("robot:gain-loss:gain=1.5", "outside [0, 1]"),
        ("robot:reversed-motor:gain=0.5", "outside"),
        ("robot:delay:steps=2.5", "whole number"),
        ("robot:gain-loss:gain=abc", "not a number"),
        ("robot:gain-loss:joint", "not key=value"),
        ("robot:crippled-leg", "needs a target"),
        ("robot:gain-loss:onset=9..3", "onset"),
        ("robot:gain-loss:duration=0", "duration"),
        ("robot:sensor-bias:joint=1,obs=3", "one target"),
        ("robot:gain-loss:gain=0.3,gain=0.4", "twice"),
    ],
)
def test_bad_specs_fail_with_one_sentence(spec, words):
    with pytest.raises(FaultSpecError) as error:
        parse_robot_fault(spec)
    message = str(error.value)
    assert words in message
    assert "\n" not in message and message.endswith(".")


specs = st.builds(
    lambda kind, joint, onset, duration, seed: (kind, joint, onset, duration, seed),
    st.sampled_from([k for k, v in KINDS.items() if "joint" in v.targets]),
    st.one_of(st.none(), st.integers(0, 3)),
    st.integers(0, 500),
    st.one_of(st.none(), st.integers(1, 500)),
    st.integers(0, 2**31),
)


@given(specs)
def test_record_spec_and_dict_round_trip(case):
    kind, joint, onset, duration, seed = case
    fault = RobotFault(
        kind, "all" if joint is None else f"joint={joint}", None, onset, duration, seed
    )
    assert parse_robot_fault(fault.spec()) == fault
    assert RobotFault.from_dict(fault.to_dict()) == fault


def test_actuator_faults_combine_and_invert():
    faults = [
        parse_robot_fault("robot:gain-loss:joint=0,gain=0.5"),
        parse_robot_fault("robot:reversed-motor:joint=0,gain=-1"),
        parse_robot_fault("robot:bias-torque:joint=1,bias=0.2"),
        parse_robot_fault("robot:saturation:limit=0.8"),
    ]
    model = actuator_model(faults, 2)
    assert model.gain.tolist() == [-0.5, 1.0]
    assert model.bias.tolist() == [0.0, 0.2]
    wanted = [0.3, -0.4]
    assert actuate(invert_actuator(wanted, model), model.gain, model.bias, model.limit) == (
        pytest.approx(wanted)
    )
