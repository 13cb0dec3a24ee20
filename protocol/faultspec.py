"""The fault-spec syntax shared by every fault domain: ``DOMAIN:KIND:key=value,key=value``.

A fault is written the same way on the CLI whatever it hits (``docs/faults.md``):
``robot:gain-loss:joint=1,gain=0.3,onset=100``, ``board:dead-neuron:core=0,fraction=0.1``,
``link:drop:rate=0.01``. :func:`split_fault_spec` is the domain-blind first half of parsing:
domain, kind and keys are case-insensitive (lowercased), values stay strings, and a key given
twice is refused rather than letting one silently win. Each domain's parser (robot_env,
firmware_sim, :mod:`protocol.link_faults`) is the second half: it checks its own kinds, keys and
values. Pure on purpose, so every domain may import it.
"""

from __future__ import annotations


def split_fault_spec(spec: str, error: type[Exception]) -> tuple[str, str, dict[str, str]]:
    """``DOMAIN:KIND[:key=value,...]`` -> ``(domain, kind, params)``; a malformed spec raises
    ``error`` (the calling domain's own error type) with one sentence naming the spec."""
    parts = spec.strip().split(":", 2)
    if len(parts) < 2 or not parts[0].strip() or not parts[1].strip():
        raise error(f"fault spec {spec!r} is not DOMAIN:KIND[:key=value,...].")
    domain, kind = parts[0].strip().lower(), parts[1].strip().lower()
    params: dict[str, str] = {}
    for item in parts[2].split(",") if len(parts) == 3 else []:
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or not key or not value:
            raise error(f"fault spec {spec!r}: {item.strip()!r} is not key=value.")
        if key in params:
            raise error(f"fault spec {spec!r} sets {key!r} twice.")
        params[key] = value
    return domain, kind, params
