"""``napari-gerbil evaluate``: score a model and/or classical baselines on a labelled dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from napari_gerbil.cli._args import add_overwrite, nonnegative_float, nonnegative_int

#: Files ``evaluate`` writes in ``--out``.
OUTPUTS = ("metrics.json", "error_cdf.png", "calibration.png")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` command."""
    p = subparsers.add_parser(
        "evaluate",
        help="score a model / classical baselines on labelled calls (errors, calibration)",
        description="Localize the calls of VCL datasets with an ensemble and/or classical "
        "baselines and write metrics.json, error CDFs and calibration curves.",
    )
    p.add_argument("--data", nargs="+", required=True, help="VCL dataset file(s) with locations")
    p.add_argument("--model", help="ensemble directory (from `napari-gerbil train`)")
    p.add_argument(
        "--baseline",
        nargs="*",
        default=[],
        metavar="METHOD",
        help="classical methods: muse, muse-jackknife, srp-phat, gcc-phat",
    )
    p.add_argument(
        "--reference",
        nargs="+",
        metavar="FILE",
        help="labelled training file(s): also run the fingerprint lookup of their calls "
        "and report how many evaluated calls sit at a reference position (does this set "
        "test localization, or recall of positions trained on?)",
    )
    p.add_argument(
        "--split",
        help="split.json of a training run; evaluate only its --part calls of these files",
    )
    p.add_argument("--part", default="test", choices=("train", "val", "test"))
    p.add_argument(
        "--max-calls",
        type=nonnegative_int,
        default=0,
        help="evaluate at most this many calls (0: all)",
    )
    p.add_argument(
        "--source-height-mm",
        type=nonnegative_float,
        default=0.0,
        help="source height the classical baselines assume (mm above the floor; default 0, "
        "as `predict`); never taken from the evaluated calls' labels",
    )
    p.add_argument("--out", required=True, help="output directory")
    add_overwrite(p)
    p.set_defaults(func=run)


def _select_pairs(args, datasets) -> np.ndarray:
    """(file, call) pairs to evaluate: all calls, or one part of a training split."""
    from napari_gerbil.errors import InvalidInputError

    if not args.split:
        pairs = np.array([(f, i) for f, ds in enumerate(datasets) for i in range(ds.n_calls)])
    else:
        from napari_gerbil.training.data import load_split

        split, paths = load_split(Path(args.split))
        resolved = [str(Path(p).resolve()) for p in paths]
        keep = []
        for f, ds in enumerate(datasets):
            here = str(Path(ds.path).resolve())
            if here not in resolved:
                raise InvalidInputError(args.split, "datasets", f"to list {here}", str(paths))
            part = split[args.part]
            mine = [int(i) for d, i in part if d == resolved.index(here)]
            if mine and max(mine) >= ds.n_calls:
                raise InvalidInputError(
                    args.split,
                    args.part,
                    f"call indices below {ds.n_calls} for {ds.path}",
                    f"call {max(mine)}",
                    hint="The split belongs to another version of the file.",
                )
            keep += [(f, i) for i in mine]
        pairs = np.array(keep, dtype=np.int64).reshape(-1, 2)
    if args.max_calls > 0:
        pairs = pairs[: args.max_calls]
    if len(pairs) == 0:
        raise InvalidInputError(args.split, args.part, "at least one call", "none")
    return pairs


def _check_call_lengths(datasets, pairs: np.ndarray) -> None:
    """Refuse calls longer than a baseline accepts (every evaluated call is read whole)."""
    from napari_gerbil.io.checks import check_call_lengths

    for f, ds in enumerate(datasets):
        mine = pairs[pairs[:, 0] == f, 1]
        check_call_lengths(
            ds.path,
            ds.call_lengths_samples[mine],
            ds.sample_rate_hz,
            "a baseline",
            "Split the long segment into calls.",
            call_ids=mine,
        )


def run(args: argparse.Namespace) -> int:
    """Run the evaluation and write the outputs."""
    from napari_gerbil.baselines import canonical_method
    from napari_gerbil.errors import InvalidInputError

    if not args.model and not args.baseline and not args.reference:
        raise InvalidInputError(
            None, "--model / --baseline / --reference", "at least one of them", "none"
        )
    from napari_gerbil.io.checks import check_vcl_input
    from napari_gerbil.io.inputs import check_input_file
    from napari_gerbil.io.outputs import check_output_path, output_lock

    methods = [canonical_method(m) for m in args.baseline]
    inputs = [*args.data, *(args.reference or []), args.split, args.model]
    named = [("--data", p) for p in args.data] + [("--reference", p) for p in args.reference or []]
    for option, p in [*named, ("--split", args.split)]:
        if p is not None:
            check_input_file(p, option)
    out = Path(args.out)
    check_output_path(
        out, overwrite=args.overwrite, inputs=inputs, directory=True, protected=OUTPUTS
    )
    with output_lock(out / OUTPUTS[0]):
        for p in [*args.data, *(args.reference or [])]:
            check_vcl_input(p, require_locations=True)
        return _run(args, methods, out)


def _run(args: argparse.Namespace, methods: list[str], out: Path) -> int:
    from napari_gerbil.evaluate import plots, runner
    from napari_gerbil.evaluate.report import write_results_json
    from napari_gerbil.io.vcl import VCLDataset

    datasets = [VCLDataset(p) for p in args.data]
    pairs = _select_pairs(args, datasets)
    _check_call_lengths(datasets, pairs)
    calls, truth = runner.dataset_calls(datasets, pairs)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"data": [str(p) for p in args.data], "n_calls": len(calls), "methods": {}}
    errors, curves = {}, {}
    arena = datasets[0].arena_dims_mm
    if args.model:
        import time

        from napari_gerbil.model.ensemble import load_ensemble

        ensemble = load_ensemble(args.model, field="--model")
        ensemble.check_compatible(
            datasets[0].n_channels,
            datasets[0].sample_rate_hz,
            arena,
            source=datasets[0].path,
            mic_positions_mm=datasets[0].mic_positions_mm,
        )
        start = time.perf_counter()
        pred = ensemble.predict(calls)
        seconds = time.perf_counter() - start
        arena = ensemble.arena_dims_mm if arena is None else arena
        named = {"ensemble": pred}
        if pred.n_members > 1:
            named["single"] = runner.single_member(pred)
        half = np.asarray(arena, float)[:2] / 2.0 + 50.0
        outside = ~np.isfinite(pred.point_mm).all(-1) | (np.abs(pred.point_mm) > half).any(-1)
        results["outside_arena"] = int(outside.sum())
        if outside.any():
            print(
                f"WARNING {int(outside.sum())} of {len(outside)} ensemble estimates lie more "
                "than 50 mm outside the arena: the model failed on them (retrain it); the "
                "errors below include them"
            )
        for name, p in named.items():
            scores = runner.score_mixture(p, truth, arena)
            scores["calls_per_s"] = len(calls) / seconds
            results["methods"][name] = scores
            errors[name] = scores["errors_mm"]
            curves[name] = (scores["nominal"], scores["coverage"])
    # the configured assumption, as `predict`: the calls' true heights would leak labels
    height = float(args.source_height_mm)
    for method in methods:
        point, seconds = runner.run_baseline(method, calls, datasets[0], source_height_mm=height)
        scores = runner.score_points(point, truth)
        scores["calls_per_s"] = len(calls) / seconds
        results["methods"][method] = scores
        errors[method] = scores["errors_mm"]
    if args.reference:
        refs = [VCLDataset(p) for p in args.reference]
        ref_pairs = np.array([(f, i) for f, ds in enumerate(refs) for i in range(ds.n_calls)])
        ref_calls, ref_xy = runner.dataset_calls(refs, ref_pairs)
        scores, recall = runner.fingerprint_recall(ref_calls, ref_xy, calls, truth)
        results["methods"]["fingerprint"] = scores
        results["recall"] = {"reference": [str(p) for p in args.reference], **recall}
        errors["fingerprint"] = scores["errors_mm"]
    plots.plot_error_cdfs(errors, out / "error_cdf.png", Path(args.data[0]).stem)
    if curves:
        plots.plot_calibration(curves, out / "calibration.png")
    write_results_json(results, out / "metrics.json")
    for name, scores in results["methods"].items():
        ece = f"  ECE {scores['ece']:.3f}" if "ece" in scores else ""
        print(
            f"{name:15s} median {scores['median_mm']:7.2f} mm  p90 {scores['p90_mm']:7.2f} mm"
            f"{ece}  ({scores['calls_per_s']:.1f} calls/s)"
        )
    if args.reference:
        recall = results["recall"]
        print(
            f"{recall['test_calls_at_training_positions']:.0%} of the calls sit at a reference "
            f"position (median distance {recall['median_nearest_training_position_mm']:.1f} "
            f"mm; median fingerprint similarity {recall['fingerprint_median_similarity']:.2f})"
        )
    print(f"wrote {out / 'metrics.json'}")
    return 0
