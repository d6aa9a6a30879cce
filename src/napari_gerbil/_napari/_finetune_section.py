"""The *Fine-tune* section.

Export the reviewed calls as training data, fine-tune the ensemble on them, judge it on
held-out reviewed calls, and switch to it only when the user says so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtWidgets import QLabel, QLineEdit, QSpinBox, QWidget

from napari_gerbil._napari import _jobs
from napari_gerbil._napari._controls import button, form, row
from napari_gerbil._napari._evidence import plural
from napari_gerbil.errors import GerbilError
from napari_gerbil.io.session import SESSION_SUFFIX


class FinetuneSection(QWidget):
    """Export reviewed calls; fine-tune; compare before/after; *Use new model*."""

    def __init__(self, dock) -> None:
        super().__init__(objectName="section_finetune")
        self.dock = dock
        self.new_model_dir: Path | None = None
        self.last_report = None
        self.training_set = QLineEdit(objectName="training_set")
        self.training_set.setPlaceholderText("training set to merge with (optional .h5)")
        self.export_path = QLineEdit(objectName="export_path")
        self.export_path.setPlaceholderText("export to (new .h5)")
        self.epochs = QSpinBox(objectName="retrain_epochs")
        self.epochs.setRange(1, 1000)
        self.epochs.setValue(10)
        self.result = QLabel("", objectName="retrain_result")
        self.result.setWordWrap(True)
        self.use_new = button(
            "Use new model", "use_finetuned_model", self.use_new_model,
            "localize with the fine-tuned ensemble from now on",
        )  # fmt: skip
        self.use_new.setEnabled(False)
        layout = form(self)
        layout.addRow("Merge with", self.training_set)
        layout.addRow("Export to", self.export_path)
        layout.addRow("Epochs", self.epochs)
        layout.addRow(
            row(
                button("Export reviewed", "export_vcl", self.export),
                button("Retrain", "retrain", self.retrain),
                self.use_new,
            )
        )
        layout.addRow(self.result)

    def _default_export_path(self) -> Path:
        path = self.dock.review.path
        return path.with_name(path.name.removesuffix(SESSION_SUFFIX) + "_reviewed.h5")

    def export(self) -> Path | None:
        """Export confirmed/corrected calls to a VCL file (merged with the training set).

        Says what the command line says: how many were written, held out, skipped.
        """
        from napari_gerbil.review.export import export_calls

        dock = self.dock
        if dock.review is None:
            dock.notify("open a session first")
            return None
        out = Path(self.export_path.text().strip() or self._default_export_path())
        training = self.training_set.text().strip()
        try:
            path, selection = export_calls(
                dock.review.session,
                out,
                "reviewed",
                poses=dock.poses,
                audio=dock.audio,
                training_set=Path(training) if training else None,
            )
        except GerbilError as exc:
            dock.error(exc)
            return None
        self.export_path.setText(str(path))
        merged = (
            f", {selection.n_duplicates} already in {Path(training).name}: replaced, not repeated"
            if training
            else ""
        )
        dock.notify(
            f"exported {plural(len(selection.rows), 'reviewed call')} to {path.name} "
            f"({selection.n_heldout} held out, {selection.n_skipped} without a tracked "
            f"animal{merged})"
        )
        return path

    def _heldout(self):
        """(clips, truth_mm) of the held-out reviewed calls, and the number reviewed."""
        from napari_gerbil.review import reviewed_calls

        dock = self.dock
        train, held, positions = reviewed_calls(dock.review, dock.poses)
        calls = dock.review.session.calls
        clips = [
            dock.audio.read(int(calls.start_sample[i]), int(calls.stop_sample[i])) for i in held
        ]
        truth = np.array([positions[int(i)] for i in held]).reshape(-1, 2)
        return clips, truth, len(train) + len(held)

    def retrain(self):
        """Fine-tune the current ensemble on the reviewed calls in a worker (returned)."""
        from napari_gerbil.training.heldout import MIN_REVIEWED_CALLS

        dock = self.dock
        if not dock.ready_for_job():
            return None
        try:
            ensemble = dock.model_section.load_ensemble()  # a model is set: before exporting
            clips, truth, n_reviewed = self._heldout()
        except (GerbilError, RuntimeError, OSError) as exc:
            dock.error(exc)
            return None
        if n_reviewed < MIN_REVIEWED_CALLS or not len(clips):
            dock.notify(
                f"fine-tuning needs at least {MIN_REVIEWED_CALLS} reviewed calls attributed "
                f"to tracked animals (every 5th is held out to judge the result); "
                f"{n_reviewed} so far: review {max(1, MIN_REVIEWED_CALLS - n_reviewed)} more"
            )
            return None
        exported = self.export()
        if exported is None:
            return None
        self.use_new.setEnabled(False)
        self.new_model_dir = None
        model_dir = dock.model_section.ensemble_dir
        heldout = (ensemble, clips, truth, dock.review.session.arena.dims_mm)
        worker = _jobs.retrain_worker(
            model_dir, exported, self.epochs.value(), heldout, dock.jobs.cancel_token
        )
        worker.returned.connect(self._on_retrained)
        return dock.jobs.start(worker, "fine-tuning")

    def _on_retrained(self, result) -> None:
        new_dir, report = result
        self.new_model_dir = Path(new_dir)
        self.last_report = report
        self.use_new.setEnabled(True)
        self._show_result(in_use=False)
        self.dock.notify(f"fine-tuned into {self.new_model_dir.name}: {verdict(report)}")

    def _show_result(self, in_use: bool) -> None:
        assert self.new_model_dir is not None
        state = "in use" if in_use else "not in use yet: Use new model switches to it"
        report = self.last_report
        judged = "" if report is None else f"\n{verdict(report)}\n{report.summary()}"
        judged += scorer_judgement(self.new_model_dir)
        self.result.setText(f"new model {self.new_model_dir.name} ({state}){judged}")

    def use_new_model(self) -> None:
        """Localize with the fine-tuned ensemble from now on (the user's choice)."""
        if self.new_model_dir is None:
            self.dock.notify("no fine-tuned model yet: Retrain first")
            return
        self.dock.model_section.model_dir.setText(str(self.new_model_dir))
        self.use_new.setEnabled(False)
        self._show_result(in_use=True)
        self.dock.notify(
            f"now using {self.new_model_dir.name}; Localize all to re-localize the calls"
        )


def scorer_judgement(model_dir: Path) -> str:
    """The attribution scorer's verdict of a fine-tune (a line), or nothing without one."""
    import json

    from napari_gerbil.training.scorer import scorer_verdict

    path = Path(model_dir) / "scorer_finetune.json"
    if not path.is_file():
        return ""
    return "\n" + scorer_verdict(json.loads(path.read_text()))


def verdict(report) -> str:
    """One sentence: is the fine-tuned model better on the held-out calls, or why unsaid."""
    from napari_gerbil.training.heldout import MIN_HELDOUT_CALLS

    before, after = report.before, report.after
    if not report.judged:
        return (
            f"no verdict: {plural(before.n_calls, 'held-out call')}, fewer than the "
            f"{MIN_HELDOUT_CALLS} needed to judge; review more calls and fine-tune again"
        )
    change = (
        f"median error {before.median_error_mm:.0f} → {after.median_error_mm:.0f} mm, "
        f"95% set holds {100 * before.coverage_95:.0f}% → {100 * after.coverage_95:.0f}% "
        f"of sources, on {plural(before.n_calls, 'held-out call')}"
    )
    rule = "lower median error with the 95% set holding at least 90% of sources"
    if after.median_error_mm < before.median_error_mm and after.coverage_95 >= 0.9:
        return f"verdict: better ({rule}: {change}); Use new model to switch"
    return f"verdict: not better (better means {rule}: {change}); keep the current model"
