"""The research harness: the tables behind ``docs/results/``, run as ``python -m studies.NAME``.

Studies may import every package; no product package imports ``studies`` (the boundary test
says so). ``studies/README.md`` lists each study and the command that runs it.
"""
