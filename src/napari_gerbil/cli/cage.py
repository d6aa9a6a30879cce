"""``napari-gerbil cage``: look at a cage (a cage file or a built-in name).

Examples::

    napari-gerbil cage show paper --out paper_cage.png
    napari-gerbil cage show my_cage.yaml --out my_cage.png
    napari-gerbil cage list
    napari-gerbil cage plan paper paper8 paper16 --out rig_plan   # how many microphones?
    napari-gerbil cage fit speaker.h5 --start paper --out my_cage.yaml --report fit_report
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_gerbil.cli._args import add_overwrite, float_range, int_range, seed


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``cage`` subcommand."""
    p = subparsers.add_parser(
        "cage",
        help="show a cage (top and side views with the microphones) or list built-in cages",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="action", required=True)
    show = sub.add_parser("show", help="draw top and side views of a cage")
    show.add_argument("cage", help="a cage file (YAML) or a built-in cage name")
    show.add_argument("--out", type=Path, required=True, help="image to write (.png, .pdf, .svg)")
    show.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    show.set_defaults(func=_show)
    listing = sub.add_parser("list", help="list the built-in cages")
    listing.set_defaults(func=_list)
    plan = sub.add_parser(
        "plan",
        help="compare microphone rigs: calls assigned / right on simulated sessions",
        description="Simulate 2- and 3-animal sessions with plausible callers in each rig, "
        "fit the steered response's attribution calibration there (no model needed) and "
        "print the share of calls assigned and right by distance between the animals, with "
        "MUSE's median error; writes plan.json, plan.md and plan.png to --out.",
    )
    plan.add_argument("rigs", nargs="+", help="cage files or built-in cages (paper, paper8, ...)")
    plan.add_argument("--out", type=Path, required=True, help="folder for the plan and sessions")
    plan.add_argument(
        "--duration", type=float_range(5.0, 3600.0), default=120.0, help="session length (s)"
    )
    plan.add_argument("--seed", type=seed, default=700, help="seed of the first session")
    plan.add_argument(
        "--calibration-calls",
        type=int_range(16, 100_000),
        default=768,
        help="simulated calls the calibration is fitted on, per rig",
    )
    plan.add_argument(
        "--scorer", type=Path, default=None,
        help="a learned scorer (MODEL/scorer.pt): also scored in the rigs it was trained for",
    )  # fmt: skip
    plan.add_argument("--quiet", action="store_true", help="no progress bar")
    add_overwrite(plan)
    plan.set_defaults(func=_plan)
    _register_fit(sub)


def _register_fit(sub) -> None:
    from napari_gerbil.cagefit.fit import DEFAULT_FIT, FIT_PARAMETERS

    fit = sub.add_parser(
        "fit",
        help="fit the simulator to a calibration recording (speaker or robot with positions)",
        description="Fit microphone positions, temperature, absorption, scattering and gains "
        "so that the engine's calls at the recording's source positions match the recorded "
        "ones; writes a normal cage file (provenance and residuals in comments) that every "
        "--cage option takes. See docs/cage_fit.md.",
    )
    fit.add_argument("data", type=Path, help="a VCL dataset with the source position of each call")
    fit.add_argument(
        "--start",
        required=True,
        help="the cage the lab wrote down (a cage file or a built-in name)",
    )
    fit.add_argument("--out", type=Path, required=True, help="the fitted cage file (.yaml)")
    fit.add_argument(
        "--fit",
        default=",".join(DEFAULT_FIT),
        help=f"what to fit, comma-separated from {','.join(FIT_PARAMETERS)} (default: %(default)s)",
    )
    fit.add_argument(
        "--calls",
        type=int_range(16, 1_000_000),
        default=None,
        help="use at most this many calls, spread over the positions",
    )
    fit.add_argument(
        "--max-evaluations",
        type=int_range(1, 100_000),
        default=600,
        help="engine evaluations the fit may spend; exhausting them fails the fit "
        "(default: %(default)s)",
    )
    fit.add_argument(
        "--check-calls",
        type=int_range(0, 100_000),
        default=300,
        help="calls rendered for the decay check, which the fit never sees "
        "(0: none; default: %(default)s)",
    )
    fit.add_argument(
        "--report",
        type=Path,
        default=None,
        help="folder for the fit report (fit.json, report.md, figures)",
    )
    fit.add_argument("--seed", type=seed, default=0, help="seed of call selection and bootstraps")
    fit.add_argument("--quiet", action="store_true", help="no progress bar")
    add_overwrite(fit)
    fit.set_defaults(func=_fit)


def _fit(args: argparse.Namespace) -> int:
    from napari_gerbil.cagefit.fit import fit_cage, parse_fit, write_fitted_cage
    from napari_gerbil.cagefit.report import REPORT_FILES, write_report
    from napari_gerbil.errors import InvalidInputError
    from napari_gerbil.io.cage import load_cage
    from napari_gerbil.io.inputs import check_input_file
    from napari_gerbil.io.outputs import check_output_path
    from napari_gerbil.progress import TqdmProgress

    out = Path(args.out)
    if out.suffix.lower() not in (".yaml", ".yml"):
        raise InvalidInputError(out, "--out", "a cage file ending in .yaml or .yml", repr(out.name))
    names = parse_fit(args.fit)
    check_input_file(args.data, "<file>", "HDF5 file")
    start = load_cage(args.start)  # a bad start cage fails before any work
    inputs = [args.data] + ([] if args.start in _builtin_names() else [args.start])
    check_output_path(out, overwrite=args.overwrite, inputs=inputs)
    if not out.parent.is_dir():
        raise InvalidInputError(out, "--out", "a file in an existing folder", "no such folder")
    if args.report is not None:
        for name in REPORT_FILES:
            check_output_path(Path(args.report) / name, overwrite=args.overwrite, inputs=inputs)
    with TqdmProgress("cage fit", disable=args.quiet) as bar:
        result = fit_cage(
            args.data,
            start,
            names,
            calls=args.calls,
            max_evaluations=args.max_evaluations,
            check_calls=args.check_calls,
            seed=args.seed,
            progress=bar,
        )
    write_fitted_cage(result, out)
    for row in result.parameters():
        sd = "" if row["sd"] != row["sd"] else f" +- {row['sd']:.3g}"
        print(f"{row['name']:12s} {row['start']:9.4g} -> {row['fitted']:9.4g}{sd} {row['unit']}")
    for name, v in result.residuals().items():
        print(f"residual, {name}: {v['start']:.3f} -> {v['fitted']:.3f}")
    print(f"fitted cage -> {out} ({result.wall_s:.0f} s)")
    note = result.caveat()
    if note:
        print(f"note: {note}")
    if args.report is not None:
        write_report(result, args.report)
        print(f"report -> {Path(args.report) / 'report.md'}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from napari_gerbil.errors import InvalidInputError
    from napari_gerbil.io.cage import load_cage
    from napari_gerbil.io.outputs import check_output_path

    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise InvalidInputError(out, "--out", "a .png, .pdf or .svg file", repr(out.suffix))
    cage_file = None if args.cage in _builtin_names() else args.cage
    check_output_path(out, overwrite=args.overwrite, inputs=[cage_file])
    if not out.parent.is_dir():
        raise InvalidInputError(out, "--out", "a file in an existing folder", "no such folder")
    cage = load_cage(args.cage)
    plot_cage(cage, out)
    print(f"cage {cage.name} -> {out}")
    return 0


def _plan(args: argparse.Namespace) -> int:
    from napari_gerbil.evaluate.rig_plan import PLAN_OUTPUTS, check_rigs, plan_rigs, plan_table
    from napari_gerbil.io.outputs import check_output_path
    from napari_gerbil.progress import TqdmProgress

    check_rigs(args.rigs)  # one clear error per bad rig, before anything runs
    files = [r for r in args.rigs if r not in _builtin_names()]
    if args.scorer is not None:
        from napari_gerbil.model.scorer import load_scorer

        load_scorer(args.scorer)  # a bad scorer file fails before any simulation
        files.append(args.scorer)
    for name in PLAN_OUTPUTS:
        check_output_path(Path(args.out) / name, overwrite=args.overwrite, inputs=files)
    with TqdmProgress("cage plan", disable=args.quiet) as bar:
        plan = plan_rigs(
            args.rigs,
            args.out,
            duration_s=args.duration,
            seed=args.seed,
            calibration_calls=args.calibration_calls,
            scorer=args.scorer,
            progress=bar,
        )
    print("\n".join(plan_table(plan)))
    print(f"plan -> {Path(args.out) / 'plan.md'}, {Path(args.out) / 'plan.png'}")
    return 0


def _builtin_names() -> tuple[str, ...]:
    from napari_gerbil.io.cage import BUILTIN_CAGES

    return tuple(BUILTIN_CAGES)


def _list(args: argparse.Namespace) -> int:
    from napari_gerbil.io.cage import BUILTIN_CAGES, builtin_cage

    for name in BUILTIN_CAGES:
        cage = builtin_cage(name)
        dims = " x ".join(f"{v:g}" for v in cage.dims_mm)
        print(f"{name:8s} {dims} mm, {cage.n_mics} microphones, pattern p = {cage.mic_pattern_p:g}")
    return 0


def plot_cage(cage, out: Path) -> None:
    """Top (x-y) and side (x-z) views: walls, microphones (numbered) and where they point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from napari_gerbil.io.atomic import atomic_path

    dims, mics, ori = cage.dims, cage.mics, cage.orientations()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1, 1]})
    views = (("top view", 0, 1, "y (mm)"), ("side view", 0, 2, "z (mm)"))
    arrow = 0.12 * dims.max()
    for ax, (title, a, b, ylabel) in zip(axes, views, strict=True):
        lo_b = -dims[b] / 2 if b < 2 else 0.0
        ax.add_patch(
            plt.Rectangle((-dims[a] / 2, lo_b), dims[a], dims[b], fill=False, lw=2, color="0.3")
        )
        ax.scatter(mics[:, a], mics[:, b], s=60, color="tab:red", zorder=3)
        labels: dict[tuple[float, float], list[str]] = {}
        for k, (m, o) in enumerate(zip(mics, ori, strict=True)):
            ax.annotate(
                "",
                xy=(m[a] + arrow * o[a], m[b] + arrow * o[b]),
                xytext=(m[a], m[b]),
                arrowprops={"arrowstyle": "->", "color": "tab:red"},
            )
            labels.setdefault((round(m[a], 1), round(m[b], 1)), []).append(str(k))
        for (x, y), names in labels.items():  # mics seen behind each other share a label
            ax.annotate(",".join(names), (x, y), textcoords="offset points", xytext=(6, 6))
        pad = 0.08 * dims[[a, b]].max()
        ax.set_xlim(-dims[a] / 2 - pad, dims[a] / 2 + pad)
        ax.set_ylim(lo_b - pad, lo_b + dims[b] + pad)
        ax.set_aspect("equal")
        ax.set_xlabel("x (mm)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
    size = " x ".join(f"{v:g}" for v in dims)
    fig.suptitle(f"{cage.name}: {size} mm, {cage.n_mics} mics, pattern p = {cage.mic_pattern_p:g}")
    fig.tight_layout()
    with atomic_path(out, suffix=out.suffix) as tmp:
        fig.savefig(tmp, dpi=110, format=out.suffix.lstrip("."))
    plt.close(fig)
