"""Progress of an embedding run for a person (Rich) or for code (a callable).

The bar advances as outcomes come back, from this process or from the cluster, by
seconds of audio (file lengths vary by 1000x, so files would make a poor ETA); it shows
files done, failures, and on a cluster the workers connected now, so a lost worker is
seen as it happens. Bad files are named above the bar as they come.
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["EmbedReporter", "duration_text"]


def duration_text(seconds: float) -> str:
    """Seconds for a person: ``"42.0 s"``, ``"12.5 min"``, ``"3.20 h"``.

    Examples
    --------
    >>> duration_text(42), duration_text(750), duration_text(11520)
    ('42.0 s', '12.5 min', '3.20 h')
    """
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    if seconds >= 600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


class EmbedReporter:
    """Rich progress (``progress=True``), a callback (a callable), or nothing (False).

    Parameters
    ----------
    progress : bool or callable
        A callable receives each :class:`~earmark.pipeline.EmbedProgress`.
    n_items : int
    audio_s_total : float
        Seconds of audio to embed, from file headers.
    workers : callable, optional
        Returns the number of workers connected now; shown when given.
    """

    def __init__(
        self,
        progress: bool | Callable[[Any], Any],
        n_items: int,
        audio_s_total: float,
        *,
        workers: Callable[[], int] | None = None,
    ):
        self.callback = progress if callable(progress) else None
        self.rich = None
        self.n_items = n_items
        self.audio_s_total = audio_s_total
        self.workers = workers
        if progress is True:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            columns = [
                TextColumn("[bold]embedding[/]"),
                BarColumn(),
                TextColumn("{task.fields[files]}/{task.fields[n_items]} files"),
                TextColumn("{task.completed:.0f}/{task.total:.0f} s of audio"),
                TextColumn("{task.fields[failed]} failed"),
            ]
            if workers is not None:
                columns.append(TextColumn("{task.fields[workers]} workers"))
            self.rich = Progress(
                *columns,
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                # stderr, so stdout stays the caller's (`earmark predict ... > labels.csv`).
                console=Console(stderr=True),
            )
            self.task = self.rich.add_task(
                "embed", total=max(audio_s_total, 1e-9), files=0, n_items=n_items, failed=0,
                workers=self._workers(),
            )

    def _workers(self) -> int | str:
        return self.workers() if self.workers is not None else ""

    def __enter__(self):
        if self.rich is not None:
            self.rich.__enter__()
        return self

    def __exit__(self, *exc_info):
        if self.rich is not None:
            self.rich.__exit__(*exc_info)

    def advance(self, seconds: float) -> None:
        """Audio embedded by a part of a file (a block of a long one)."""
        if self.rich is not None and seconds:
            self.rich.update(self.task, advance=seconds, workers=self._workers())

    def item(self, event, advance_s: float, n_failed: int) -> None:
        """One item done: ``event`` is its EmbedProgress."""
        if self.rich is not None:
            if event.status == "failed":
                from rich.markup import escape

                self.rich.console.print(
                    f"[yellow]skipped[/] {escape(event.path)}: {escape(event.reason or '')}"
                )
            self.rich.update(
                self.task, advance=advance_s, files=event.n_done, failed=n_failed,
                workers=self._workers(),
            )
            if event.n_done == event.n_items:  # header lengths are only estimates
                self.rich.update(self.task, completed=max(self.audio_s_total, 1e-9))
        if self.callback is not None:
            self.callback(event)
