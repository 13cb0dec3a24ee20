"""``glocal`` verbs owned by ``deploy``: pack, export-onnx, flash, run, demo, hil,
fewshot-board, evaluate, export-nir, and ``scenario few-shot-runs`` (which ``glocal.cli`` adds to
train's ``scenario`` verb, since train may not import the board).

Each handler only parses and calls the library (``deploy.*``); human output goes to stderr and
the returned dict is what ``--json`` prints. Handlers import the library (torch, gymnasium)
inside: the CLI builds every verb's parser at every start, the emulated board's
``glocal board`` too, and that must stay as light as the board it emulates.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from deploy.errors import DeployError
from deploy.onnx_export import PARITY_TOLERANCE, STATE_TOLERANCE


def register(
    subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
    for add_verb in (
        register_pack,
        register_export_onnx,
        register_flash,
        register_run,
        register_demo,
        register_hil,
        register_fewshot_board,
        register_evaluate,
        register_export_nir,
    ):
        add_verb(subparsers, parents)


def register_pack(
    subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
    p = subparsers.add_parser(
        "pack",
        parents=parents,
        help="quantise a checkpoint, map it onto cores (design rules) and write a core image",
        description=(
            "Quantise CHECKPOINT (per-layer scales, quantisation-error report), map its layers "
            "onto the profile's cores with design-rule checks and a resource report, and pack "
            "the core image (.glc), signed with --sign KEY if given."
        ),
    )
    p.add_argument("checkpoint", help="training checkpoint (model.pt or its folder)")
    p.add_argument("--profile", default="tianjic", help="board profile (default: %(default)s)")
    p.add_argument("--out", required=True, type=Path, help="the .glc file to write")
    p.add_argument("--sign", type=Path, metavar="KEY", help="Ed25519 private key (PEM or raw)")
    add_copies_options(p)
    p.set_defaults(handler=pack_command)


def register_export_onnx(
    subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
    p = subparsers.add_parser(
        "export-onnx",
        parents=parents,
        help="export the float step (plastic state as inputs/outputs) and check onnxruntime parity",
        description=(
            "Export one control step of CHECKPOINT to ONNX with the plastic state as explicit "
            "inputs and outputs, then run torch and onnxruntime side by side over a seeded "
            "episode and fail if actions differ by more than --tolerance or membranes and "
            "traces by more than --state-tolerance (both relative to values above 1). --out is "
            "written only once the graph passes; a failure leaves it as it was."
        ),
    )
    p.add_argument("checkpoint", help="training checkpoint (model.pt or its folder)")
    p.add_argument("--out", required=True, type=Path, help="the .onnx file to write")
    p.add_argument("--env", default="glocal/ArmReach-v0", help="env of the parity episode")
    p.add_argument("--steps", type=int, default=300, help="steps of the parity episode")
    p.add_argument(
        "--tolerance",
        type=float,
        default=PARITY_TOLERANCE,
        help="largest allowed difference of actions (%(default)s)",
    )
    p.add_argument(
        "--state-tolerance",
        type=float,
        default=STATE_TOLERANCE,
        help="largest allowed difference of membranes and traces (%(default)s; float32's floor "
        "for a slowly decaying trace, see docs/deploy.md)",
    )
    p.set_defaults(handler=export_onnx_command)


def register_flash(
    subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
    p = subparsers.add_parser(
        "flash",
        parents=parents,
        help="flash a core image onto a board (progress, resume, hash check) and boot it",
        description="Flash IMAGE over --port, resuming what the board holds, verify, boot.",
    )
    p.add_argument("image", type=Path, help="the core image (.glc)")
    p.add_argument("--port", required=True, help="pyserial URL or pty path of the board")
    p.add_argument("--no-boot", action="store_true", help="flash only, keep the running image")
    p.set_defaults(handler=flash_command)


def register_run(
    subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
    p = subparsers.add_parser(
        "run",
        parents=parents,
        help="run the closed loop (env <-> board) with faults; telemetry, summary and plots",
        description=(
            "Drive ENV with the board on --port for N episodes, learning on, off or both on the "
            "same image, with faults in any domain (robot:..., board:..., link:...). Every "
            "argument is checked before the port opens. Progress per episode on stderr; "
            "telemetry.jsonl is flushed per episode (per step with -v), so Ctrl-C keeps it and "
            "writes summary.json, PNG plots and report.md of the episodes completed into --out."
        ),
    )
    p.add_argument("--port", required=True, help="pyserial URL or pty path of the board")
    p.add_argument("--env", default="glocal/ArmReach-v0", help="gymnasium env id")
    p.add_argument("--episodes", type=int, default=5, help="episodes per run (%(default)s)")
    p.add_argument(
        "--steps",
        type=int,
        help="control steps per episode (default: the steps the image's checkpoint was evaluated "
        "at, else the env's limit; printed)",
    )
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="fault spec, repeat for combined faults, e.g. --fault "
        "robot:gain-loss:joint=1,gain=0.3,onset=100 --fault board:dead-neuron:core=0 "
        "(docs/faults.md)",
    )
    p.add_argument("--learning", default="both", choices=("on", "off", "both"))
    p.add_argument("--seed", type=int, default=0, help="env seed of the first episode")
    p.add_argument(
        "--image",
        type=Path,
        help="the flashed .glc, whose meta (checkpoint, trace unit) the report uses (default: the "
        "board's own record of its image)",
    )
    p.add_argument("--gif", action="store_true", help="also write episode.gif")
    p.add_argument(
        "--step-deadline",
        type=float,
        metavar="SECONDS",
        help="longest wait for one STEP's answer (default: the env's control period)",
    )
    p.add_argument(
        "--on-miss",
        default="hold",
        choices=("hold", "zero"),
        help="action when a STEP misses its deadline: hold the last one or send zeros",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.set_defaults(handler=run_command)


def register_demo(
    subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
    p = subparsers.add_parser(
        "demo",
        parents=parents,
        help="run the end-to-end demo: board on a pty, flash, closed loop with a fault",
        description=(
            "Start an emulated board on a pty, pack and flash the shipped checkpoint, run ArmReach "
            "with a mid-episode actuator fault, learning on and off, and write a report."
        ),
    )
    p.add_argument("--out", default="glocal-demo", type=Path, help="output folder (%(default)s)")
    p.add_argument("--checkpoint", help="use this checkpoint instead of the shipped one")
    p.add_argument("--episodes", type=int, default=None, help="episodes per run")
    p.set_defaults(handler=demo_command)


def register_hil(
    subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
    p = subparsers.add_parser(
        "hil",
        parents=parents,
        help="hardware-in-the-loop conformance suite against a board on --port",
        description=(
            "Check a board that speaks the protocol: HELLO, STATUS, flash and resume, boot, STEP "
            "bit-exact to the spec's engine, RESET, learning on/off, bad input, fault injection "
            "and recovery. Exit code 1 if any check fails. The suite flashes and boots its own "
            "small test image into the spare A/B slot and boots the image that ran before again "
            "at the end, saying which; a board without A/B slots is refused unless "
            "--allow-reflash (then flash your model again afterwards)."
        ),
    )
    p.add_argument("--port", required=True, help="pyserial URL or pty path of the board")
    p.add_argument(
        "--allow-reflash",
        action="store_true",
        help="run even where the test image overwrites the board's only slot",
    )
    p.set_defaults(handler=hil_command)


def register_fewshot_board(
    subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
    p = subparsers.add_parser(
        "fewshot-board",
        parents=parents,
        help="run the few-shot scenario's HP model on the emulated board (on-chip binding)",
        description=(
            "Pack the trained binding layer of a few-shot checkpoint (fewshot-hp-seedN.pt, "
            "written by `glocal scenario few-shot`; a run folder means all of them) into "
            "a one-core image and run N-way 1-shot Omniglot episodes on the emulated board: the "
            "host extracts features, on-chip learning binds the support images to their labels, "
            "the board's spike counts and membranes classify the queries. Reports the board's "
            "accuracy beside torch with the board's integer numerics and torch float on the same "
            "episodes, with 95% CIs; --out gets fewshot-board.json and fewshot-board.md."
        ),
        epilog="example: glocal fewshot-board results/ --ways 5 20 --episodes 1000 --out results/",
    )
    p.add_argument("checkpoint", help="fewshot-hp-seedN.pt, or the scenario run folder with them")
    p.add_argument(
        "--ways",
        type=int,
        nargs="+",
        default=[5, 20],
        metavar="N",
        help="N-way tests (default: 5 20)",
    )
    p.add_argument("--episodes", type=int, default=1000, help="episodes per N (%(default)s)")
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="episode seed (default: 20000 + the checkpoint's training seed)",
    )
    p.add_argument(
        "--data-root",
        default=None,
        help="Omniglot folder (default: $GLOCAL_DATA/omniglot or ../shared/data/omniglot)",
    )
    p.add_argument("--profile", default="tianjic", help="board profile (default: %(default)s)")
    p.add_argument("--out", type=Path, help="folder for fewshot-board.json and fewshot-board.md")
    p.set_defaults(handler=fewshot_board_command)


def register_fewshot_runs(
    scenario_commands: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
    """``glocal scenario few-shot-runs``: a SCENARIO of train's verb that needs the board."""
    p = scenario_commands.add_parser(
        "few-shot-runs",
        parents=parents,
        help="score one-shot runs (Lake et al.'s all-runs layout) with a few-shot checkpoint",
        description=(
            "Score the one-shot runs under --runs (runNN/class_labels.txt, runNN/training/, "
            "runNN/test/, as in Lake et al. 2015's released runs) with a few-shot checkpoint "
            "(fewshot-hp-seedN.pt): HP in torch, HP with the binding on the emulated board "
            "(where an N-way layer fits one core), GP when fewshot-gp-seedN.pt lies beside it, "
            "and the cosine-prototype reference on HP's features. Prints per-run and mean "
            "accuracy."
        ),
        epilog="example: glocal scenario few-shot-runs results/fewshot-hp-seed0.pt "
        "--runs all_runs/ --json",
    )
    p.add_argument("checkpoint", help="fewshot-hp-seedN.pt written by `glocal scenario few-shot`")
    p.add_argument("--runs", type=Path, required=True, help="the folder holding runNN/ folders")
    p.add_argument("--profile", default="tianjic", help="board profile (default: %(default)s)")
    p.set_defaults(handler=fewshot_runs_command)


def register_evaluate(
    subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
    p = subparsers.add_parser(
        "evaluate",
        parents=parents,
        help="the closing table: board and torch, learning on and off, against both teachers",
        description=(
            "Pack CHECKPOINT, flash it onto an emulated board on a pty and score it on the same "
            "seeded episodes as torch (learning on and off each) and the fault-blind and "
            "fault-aware teachers. Robot part: held-out magnitudes of the trained fault kinds, "
            "or the --fault specs; each controller's reward per step after onset and closure "
            "(the share of the blind-to-aware teacher gap it closes). Board part: on-chip "
            "faults, learning on and off, return relative to fault-free. Progress per episode "
            "on stderr; --json prints the tables, --out writes closing_table.json and .md."
        ),
        epilog="example: glocal evaluate --fault robot:reversed-motor:joint=0,gain=-1,onset=100 "
        "--episodes 20 --json",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        metavar="DIR",
        help="training checkpoint (folder or model.pt) of a spiking policy; default: the shipped "
        "demo checkpoint",
    )
    p.add_argument(
        "--env",
        help="task id when the checkpoint names none (train.tasks.TASKS: glocal/ArmReach-v0, "
        "Reacher-v5); default: the checkpoint's task",
    )
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="robot fault spec (repeatable), a robot row each instead of the held-out kinds; "
        "onset is --onset unless the spec names one (glocal envs lists the kinds)",
    )
    p.add_argument(
        "--chip-faults",
        nargs="+",
        default=[],
        metavar="SPEC",
        help="board fault specs for the board part instead of the three standard ones, e.g. "
        "board:dead-neuron:core=0,fraction=0.05 (onset is --onset)",
    )
    p.add_argument(
        "--episodes", type=int, default=100, help="seeded episodes per cell (%(default)s)"
    )
    p.add_argument("--steps", type=int, default=300, help="control steps per episode (%(default)s)")
    p.add_argument(
        "--onset", type=int, default=100, help="control step at which faults start (%(default)s)"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="base seed of every episode's env and fault seeds"
    )
    p.add_argument(
        "--parts",
        nargs="+",
        choices=("robot", "board"),
        default=["robot", "board"],
        help="which tables to make (default: both)",
    )
    add_copies_options(p)
    p.add_argument("--out", type=Path, metavar="DIR", help="folder for closing_table.json and .md")
    p.set_defaults(handler=evaluate_command)


def add_copies_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--encoder-copies",
        type=int,
        default=1,
        metavar="K",
        help="spread each encoder synapse over K board synapses that sum to it exactly: the same "
        "actions on a healthy chip, 1/K of the damage per stuck-at-zero synapse, but K times "
        "the encoder axons and weight bits that can flip (docs/deploy.md; default: %(default)s)",
    )
    p.add_argument(
        "--readout-copies",
        type=int,
        default=1,
        metavar="R",
        help="give each action R readout neurons that share its decoder weight exactly: the same "
        "actions on a healthy chip, and a dead readout neuron costs 1/R of one action instead of "
        "all of it (docs/deploy.md; default: %(default)s)",
    )


def pack_command(args: argparse.Namespace) -> dict[str, Any]:
    from deploy.mapping import render_resources
    from deploy.pack import load_signing_key, pack_checkpoint

    key = load_signing_key(args.sign) if args.sign else None
    packed = pack_checkpoint(
        args.checkpoint, args.profile, key, args.encoder_copies, args.readout_copies
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_bytes(packed.data)  # then rename: an interrupted pack never leaves half an image
    tmp.replace(args.out)
    report = packed.network.report
    if not args.json:
        print(render_quantisation(report), file=sys.stderr)
        print(render_resources(packed.resources), file=sys.stderr)
        print(f"wrote {args.out} ({len(packed.data)} bytes)", file=sys.stderr)
    return {
        "out": str(args.out),
        "bytes": len(packed.data),
        "signed": key is not None,
        "quantisation": report,
        "resources": packed.resources,
    }


def render_quantisation(report: dict[str, Any]) -> str:
    lines = ["quantisation (rounding error, values clipped):"]
    for name, layer in report["layers"].items():
        parts = [
            f"{table} rms {stats['rms_lsb']:.3f} LSB, rel {stats['relative']:.2e}, "
            f"clipped {stats['clipped']}"
            for table, stats in layer.items()
            if isinstance(stats, dict) and "rms_lsb" in stats
        ]
        lines.append(f"  {name}: acc {layer['acc_bits']}/32 bits; " + "; ".join(parts))
    lines += [f"  warning: {w}" for w in report["warnings"]]
    return "\n".join(lines)


def export_onnx_command(args: argparse.Namespace) -> dict[str, Any]:
    from deploy.onnx_export import export_checked
    from deploy.quantise import load_checkpoint

    checkpoint = load_checkpoint(args.checkpoint)
    result = export_checked(
        checkpoint.policy,
        args.out,
        args.env,
        args.steps,
        tolerance=args.tolerance,
        state_tolerance=args.state_tolerance,
    )
    if not args.json:
        print(
            f"wrote {args.out}; onnxruntime vs torch over {result['steps']} steps: actions "
            f"{result['max_action_diff']:.2e}, state {result['max_state_diff']:.2e} "
            f"(tolerances {args.tolerance:.0e} and {args.state_tolerance:.0e})",
            file=sys.stderr,
        )
    return {"out": str(args.out), "parity": result}


def flash_command(args: argparse.Namespace) -> dict[str, Any]:
    from deploy.flash import connect, flash_and_boot

    data = args.image.read_bytes()
    client, transport = connect(args.port)
    try:
        if args.no_boot:
            result = client.flash(data)
            return {"bytes": result.size, "slot": result.slot, "sha256": result.sha256.hex()}
        return flash_and_boot(client, data, progress=not args.json)
    finally:
        transport.close()


def image_file(path: Path | None) -> tuple[dict[str, Any] | None, str | None]:
    """The ``meta`` and file sha256 of the image file ``--image`` (None: the board's own)."""
    if path is None:
        return None, None
    import hashlib

    from protocol.image import open_image

    data = path.read_bytes()
    return dict(open_image(data).image.meta), hashlib.sha256(data).hexdigest()


def run_command(args: argparse.Namespace) -> dict[str, Any]:
    from deploy.flash import connect
    from deploy.session import board_session, check_run

    # refused here, before a port is opened or --out touched, in one sentence each
    check_run(
        args.env,
        args.episodes,
        args.fault,
        args.learning,
        args.steps,
        args.step_deadline,
        args.on_miss,
    )
    meta, sha256 = image_file(args.image)
    link = any(spec.strip().lower().startswith("link:") for spec in args.fault)
    client, transport = connect(args.port, **({"seed": args.seed} if link else {}))
    try:
        summary = board_session(
            client,
            args.env,
            args.episodes,
            args.fault,
            args.out,
            learning=args.learning,
            steps=args.steps,
            seed=args.seed,
            image_meta=meta,
            image_sha256=sha256,
            link=transport if link else None,
            gif=args.gif,
            port=args.port,
            flush_every_step=args.verbose > 0,
            step_deadline=args.step_deadline,
            on_miss=args.on_miss,
        )
    finally:
        transport.close()
    if not args.json:
        print_runs(summary["runs"])
        print(f"wrote {args.out}", file=sys.stderr)
    return summary


def demo_command(args: argparse.Namespace) -> dict[str, Any]:
    from deploy.demo import DEMO_EPISODES, run_demo

    summary = run_demo(args.out, args.checkpoint, args.episodes or DEMO_EPISODES)
    if not args.json:
        print_runs(summary["runs"])
        print(f"report: {args.out / 'report.md'} ({summary['seconds']} s)", file=sys.stderr)
    return summary


def print_runs(runs: list[dict[str, Any]]) -> None:
    """One line per closed-loop run, for people (--json has every figure)."""

    def number(value: float | None, fmt: str) -> str:
        return "n/a" if value is None else format(value, fmt)

    for r in runs:
        lost = f"; {r['steps_lost']} steps lost on the link" if r.get("steps_lost") else ""
        print(
            f"{r['label']}: return {r['return_mean']:.1f} +- {r['return_std']:.1f}, reward/step "
            f"before onset {number(r['reward_before_onset'], '.3f')}, after "
            f"{number(r['reward_after_onset'], '.3f')}; step p50 "
            f"{number(r['latency_ms_p50'], '.2f')} ms, p99 {number(r['latency_ms_p99'], '.2f')} ms"
            f"{lost}",
            file=sys.stderr,
        )


def hil_command(args: argparse.Namespace) -> dict[str, Any]:
    from deploy.flash import connect
    from deploy.hil import run_suite

    def report(name: str, passed: bool, detail: str) -> None:
        if not args.json:
            print(f"{'PASS' if passed else 'FAIL'}  {name}: {detail}", file=sys.stderr)

    client, transport = connect(args.port)
    try:
        return run_suite(client, report, args.allow_reflash)
    finally:
        transport.close()


def evaluate_command(args: argparse.Namespace) -> dict[str, Any]:
    from deploy.evaluate import Episodes, closing_table, format_tables, write_tables
    from deploy.progress import EpisodeBar

    with EpisodeBar("evaluate") as progress:
        result = closing_table(
            args.checkpoint,
            args.env,
            Episodes(args.episodes, args.steps, args.onset, args.seed),
            parts=args.parts,
            robot_faults=args.fault,
            chip_faults=args.chip_faults,
            encoder_copies=args.encoder_copies,
            readout_copies=args.readout_copies,
            progress=progress,
        )
    if args.out:
        write_tables(result, args.out)
    if not args.json:
        print(format_tables(result), file=sys.stderr)
    return result


def fewshot_board_command(args: argparse.Namespace) -> dict[str, Any]:
    from deploy.fewshot_board import fewshot_board
    from deploy.progress import EpisodeBar

    with EpisodeBar("fewshot-board") as progress:
        summary = fewshot_board(
            args.checkpoint,
            args.ways,
            args.episodes,
            args.seed,
            args.data_root,
            args.out,
            args.profile,
            progress,
        )
    if not args.json:
        print(summary["table"], file=sys.stderr, end="")
        if args.out:
            print(f"wrote {args.out / 'fewshot-board.json'} and .md", file=sys.stderr)
    return summary


def fewshot_runs_command(args: argparse.Namespace) -> dict[str, Any]:
    from deploy.fewshot_board import fewshot_runs

    summary = fewshot_runs(args.checkpoint, args.runs, args.profile)
    if not args.json:
        print(summary["table"], file=sys.stderr, end="")
        if "board_skipped" in summary:
            print(f"board skipped: {summary['board_skipped']}", file=sys.stderr)
    return summary


__all__ = ["DeployError", "register", "register_fewshot_runs"]


def register_export_nir(
    subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
    """Adds ``glocal export-nir CHECKPOINT [--out FILE] [--n-way N]``."""
    p = subparsers.add_parser(
        "export-nir",
        parents=parents,
        help="export a checkpoint's static graph to NIR (plasticity in node metadata)",
        description=(
            "Write the network of a checkpoint as a Neuromorphic Intermediate Representation "
            "(NIR) HDF5 file that other SNN tools read (nir.read, snntorch.import_nir, ...). A "
            "robot-policy checkpoint (model.pt of `glocal train`, or its folder) becomes Input -> "
            "Affine encoder -> Linear -> LIF hidden (+ Linear recurrence) -> Linear -> LI readout "
            "-> Affine decoder -> Output; a few-shot scenario checkpoint (fewshot-hp-seedN.pt of "
            "`glocal train --scenario few-shot`) becomes its N-way binding layer as deployed on "
            "the board, Input -> Affine -> LIF -> Output (the host-side feature extractor is not "
            "in the graph). One board tick is dt = 1e-4 s: tau = 2^decay_shift * dt. NIR has no "
            "node for on-chip learning, so the graph runs with plasticity off; the local rule, "
            "the reset mode (NIR's LIF resets to v_reset, i.e. hard) and train.quant's scales and "
            "integer tables travel in node metadata."
        ),
        epilog=(
            "examples: glocal export-nir train/checkpoints/armreach_hp --out armreach.nir; "
            "glocal export-nir results/fewshot-hp-seed0.pt --n-way 20 --out fewshot20.nir"
        ),
    )
    p.add_argument("checkpoint", help="model.pt (or its folder), or a few-shot fewshot-hp-seedN.pt")
    p.add_argument(
        "--out", default=None, help="NIR file to write (default: CHECKPOINT with suffix .nir)"
    )
    p.add_argument(
        "--n-way",
        type=int,
        default=5,
        help="few-shot checkpoints: classes (neurons) of the binding layer (default: %(default)s)",
    )
    p.set_defaults(handler=export_nir_command)


def export_nir_command(args: argparse.Namespace) -> dict[str, Any]:
    from deploy.nir_export import export_nir

    out = args.out or str(Path(args.checkpoint).with_suffix(".nir"))
    summary = export_nir(args.checkpoint, out, args.n_way)
    if not args.json:
        nodes = " -> ".join(summary["nodes"])
        print(f"wrote {summary['out']} ({nodes})", file=sys.stderr)
    return summary
