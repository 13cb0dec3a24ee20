"""The seed paper's three learning scenarios on real data: few-shot, continual, fault-tolerant.

Each scenario compares hybrid plasticity (HP: BPTT-trained weights plus a meta-learned local
Hebbian trace, :mod:`train.snn`) with global-only (GP) and local-only (LP) learning on the same
data and budget; see ``docs/scenarios.md``. Entry points for the CLI live in
:mod:`train.scenarios.cli`.
"""
