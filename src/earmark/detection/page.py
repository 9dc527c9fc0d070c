"""A web page for one file's detections: zoom into the lanes, click an event, hear it.

:func:`write_detection_page` writes one self-contained HTML file per recording (the
script and style inline, no network, nothing to install): a lane per class with each
event a box, in the picture's colours and order; the mouse wheel or the buttons zoom,
dragging pans; clicking a box (or a row of the event table under it) plays that event
from its onset and stops at its offset. The page reaches the recording through an
``<audio>`` element by its path *relative to the page*, so the output folder and the
recordings may move together; a recording on another drive is named by a ``file:`` URL.

One page per file rather than one for the run: each is written, like the file's other
outputs, as soon as that file is done (on whichever worker scanned it), and an
hour-long recording's page carries only its own events.
"""

from __future__ import annotations

import html
import json
import os
from importlib import resources
from pathlib import Path
from urllib.parse import quote

from ..files import atomic_write
from .plots import _classes_by_interest, lane_colours

__all__ = ["detection_page", "write_detection_page", "audio_link"]


def audio_link(audio_path, page_path) -> str:
    """How a page at ``page_path`` refers to ``audio_path``: a relative, escaped URL.

    Examples
    --------
    >>> audio_link("/data/rec/dawn #1.wav", "/data/out/rec/dawn #1.detections.html")
    '../../rec/dawn%20%231.wav'
    """
    audio = Path(os.path.abspath(audio_path))
    folder = Path(os.path.abspath(page_path)).parent
    try:
        relative = os.path.relpath(audio, folder)
    except ValueError:  # another drive (Windows): no relative path exists
        return audio.as_uri()
    return quote(relative.replace(os.sep, "/"))


def detection_page(result, audio_src: str | None = None, *, title: str | None = None) -> str:
    """The HTML text of one file's page.

    Parameters
    ----------
    result : DetectionResult
    audio_src : str, optional
        URL of the recording as the page should load it (see :func:`audio_link`);
        without it the page shows events but plays nothing.
    title : str, optional
        Defaults to the file's name.

    Returns
    -------
    str
        A whole HTML document.

    Examples
    --------
    >>> import numpy as np
    >>> from earmark.detection.stream import DetectionResult
    >>> from earmark.detection.events import Event
    >>> start = np.arange(10) * 0.5
    >>> result = DetectionResult(
    ...     path="a.wav", classes=["dog"], scores=np.linspace(0, 1, 10)[:, None],
    ...     start_s=start, end_s=start + 0.5, events=[Event("a.wav", "dog", 2.5, 5.0, 1.0)],
    ...     duration_s=5.0, sample_rate=16000, hop_s=0.5, thresholds=np.array([0.5]))
    >>> text = detection_page(result, "a.wav")
    >>> text.startswith("<!DOCTYPE html>"), "<script src" in text
    (True, False)
    """
    lanes = _classes_by_interest(result, result.smoothed_scores())
    colours = lane_colours(result.classes)
    row_of = {label: row for row, label in enumerate(lanes)}
    events = sorted(
        (e for e in result.events if e.label in row_of), key=lambda e: (e.onset_s, row_of[e.label])
    )
    data = {
        "name": _file_name(result.path),
        "audio": audio_src,
        "duration_s": float(result.duration_s),
        "classes": lanes,
        "colours": [colours[label] for label in lanes],
        "counts": [sum(e.label == label for e in events) for label in lanes],
        "events": [
            [row_of[e.label], round(e.onset_s, 6), round(e.offset_s, 6),
             None if e.score is None else round(float(e.score), 6)]
            for e in events
        ],
    }
    static = resources.files(__package__) / "static"
    name = html.escape(title if title is not None else data["name"])
    audio = (
        f'<audio id="player" controls preload="metadata" src="{html.escape(audio_src)}"></audio>'
        if audio_src else '<audio id="player"></audio>'
    )
    return _TEMPLATE.format(
        title=name,
        summary=html.escape(
            f"{len(events)} event(s) of {len(lanes)} class(es) in {result.duration_s:.1f} s"
        ),
        style=static.joinpath("detections.css").read_text(encoding="utf-8"),
        script=static.joinpath("detections.js").read_text(encoding="utf-8"),
        audio=audio,
        data=_script_json(data),
    )


def write_detection_page(result, path, *, audio_path=None) -> Path:
    """Write :func:`detection_page` to ``path`` atomically, linking the recording.

    Parameters
    ----------
    result : DetectionResult
    path : str or Path
        Where the page goes (``.html``).
    audio_path : str or Path, optional
        The recording; defaults to ``result.path``. Linked relative to the page.

    Returns
    -------
    Path
    """
    audio_path = result.path if audio_path is None else audio_path
    return atomic_write(path, detection_page(result, audio_link(audio_path, path)))


def _file_name(path) -> str:
    return str(path).replace("\\", "/").rsplit("/", 1)[-1]


def _script_json(value) -> str:
    # Inside <script>, "</script>" or "<!--" in a label would end or bend the element.
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; media-src * file: blob: data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{title}: detections</title>
<style>
{style}</style>
</head>
<body>
<h1>{title}</h1>
<p class="muted">{summary}. Wheel or buttons to zoom, drag to pan, click an event to hear it.</p>
{audio}
<p id="audio-error"></p>
<div id="bar">
  <button type="button" id="zoom-in">zoom in</button>
  <button type="button" id="zoom-out">zoom out</button>
  <button type="button" id="reset">whole file</button>
  <span id="range"></span>
</div>
<svg id="timeline" xmlns="http://www.w3.org/2000/svg" role="img"
     aria-label="events per class over time"></svg>
<table id="events">
<thead><tr><th></th><th>class</th><th>onset (s)</th><th>offset (s)</th><th>score</th></tr></thead>
<tbody></tbody>
</table>
<script type="application/json" id="detections">{data}</script>
<script>
{script}</script>
</body>
</html>
"""
