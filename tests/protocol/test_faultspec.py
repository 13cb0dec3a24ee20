"""The fault-spec syntax every domain shares, and the link domain's own parser."""

import pytest

from protocol.errors import LinkFaultError
from protocol.faultspec import split_fault_spec
from protocol.link_faults import parse_link_fault


class SpecError(Exception):
    """Stands in for the error type of the domain that calls the splitter."""


def test_split_is_domain_blind_and_lowercases_names_not_values():
    assert split_fault_spec("Board:Stuck-At:CORE=0, neuron=12 ,Value=Abc", SpecError) == (
        "board",
        "stuck-at",
        {"core": "0", "neuron": "12", "value": "Abc"},
    )
    assert split_fault_spec("link:byte-drop", SpecError) == ("link", "byte-drop", {})


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("robot", "is not DOMAIN:KIND"),
        (":gain-loss", "is not DOMAIN:KIND"),
        ("robot:gain-loss:joint", "'joint' is not key=value"),
        ("robot:gain-loss:gain=", "'gain=' is not key=value"),
        (
            "robot:gain-loss:gain=0.3,Gain=0.4",
            "'robot:gain-loss:gain=0.3,Gain=0.4' sets 'gain' twice",
        ),
    ],
)
def test_a_malformed_spec_raises_the_callers_error_in_one_sentence(spec, words):
    with pytest.raises(SpecError, match=words) as error:
        split_fault_spec(spec, SpecError)
    assert str(error.value).endswith(".") and "\n" not in str(error.value)


def test_link_spec_parses_to_the_shared_record():
    assert parse_link_fault("LINK:Throttle:BAUD=9600,onset=5,duration=10,seed=2") == {
        "domain": "link",
        "kind": "throttle",
        "target": "all",
        "magnitude": 9600,
        "onset": 5,
        "duration": 10,
        "seed": 2,
    }
    assert parse_link_fault("link:drop:rate=0.01")["magnitude"] == 0.01


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("robot:drop:rate=0.1", "not 'link'"),
        ("link:jam:rate=0.1", "kind 'jam' is unknown"),
        ("link:drop:onset=3", "takes rate=VALUE"),
        ("link:delay:seconds=1,gain=2", "takes seconds=VALUE"),
        ("link:corrupt:rate=2", "between 0.0 and 1.0"),
        ("link:drop:rate=0.1,seed=x", "not a number"),
        ("link:drop:rate=0.1,RATE=0.2", "sets 'rate' twice"),
    ],
)
def test_bad_link_specs_are_one_sentence(spec, words):
    with pytest.raises(LinkFaultError, match=words):
        parse_link_fault(spec)
