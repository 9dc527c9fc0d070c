"""The cluster map: one self-contained HTML page where clicking a point plays its sound.

:func:`write_map` draws each clip at its 2-D position (:mod:`earmark.explore.projection`)
with Plotly, coloured by cluster or by label (buttons switch between the two when both
are given; each legend entry hides or shows its group), and a side panel that shows the
clicked clip's file, label and cluster and plays it.

The page depends on nothing outside itself: plotly.js is inlined, and so, by default, is
the sound (``audio="embed"``). Each clip becomes a short MP3 data URI (mono, 16 kHz, at
most ``audio_seconds``, about 4-6 kB per second), which plays in every current browser,
survives moving or mailing the page, and needs no server or file permissions: a
page opened from disk cannot read arbitrary files with script, and relative links break
as soon as either side moves. The cost is size (all 3000 FSDD clips, 0.4 s on average: 14 MB
with plotly.js's 4.6 MB; about 7 kB more per second of sound) and only the first
seconds are heard. ``audio="link"`` instead refers to
each file by its path relative to the page (full length, tiny page, but the page and the
files must stay where they are); ``audio="none"`` leaves sound out.

Everything shown comes from the user's files (names, labels), so it is escaped: hover
text and legend entries as HTML, and the panel's data travel as JSON read with
``JSON.parse`` and shown with ``textContent``, never as markup.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np

from ..exceptions import AudioError, ParameterError

__all__ = ["write_map", "WrittenMap", "AUDIO_MODES", "COLOR_BY"]

AUDIO_MODES = ("embed", "link", "none")
COLOR_BY = ("cluster", "label")
#: Rate of embedded previews: speech and most sounds stay clear, and MP3 stays small.
PREVIEW_SR = 16000
_UNASSIGNED = "unassigned"


@dataclass
class WrittenMap:
    """What :func:`write_map` wrote.

    Attributes
    ----------
    path : Path
    n_points : int
    audio : str
        The audio mode used.
    audio_failures : list of (str, str)
        Files whose preview could not be made, with the reason; their points stay on the
        map without sound.
    """

    path: Path
    n_points: int
    audio: str
    audio_failures: list[tuple[str, str]] = field(default_factory=list)


def write_map(
    path,
    coordinates,
    files,
    *,
    labels=None,
    clusters=None,
    color_by: str = "cluster",
    audio: str = "embed",
    audio_seconds: float = 5.0,
    spans=None,
    title: str = "earmark cluster map",
    subtitle: str = "",
) -> WrittenMap:
    """Write the interactive map of a collection as one HTML file.

    Parameters
    ----------
    path : str or Path
        The page to write (its folder is created).
    coordinates : np.ndarray [shape=(n_samples, 2)]
        Position of each clip, e.g. :attr:`Projection.coordinates`.
    files : sequence of str [length n_samples]
        Audio file of each clip.
    labels : sequence of str [length n_samples], optional
    clusters : sequence of int [length n_samples], optional
        Cluster of each clip; ``-1`` is drawn as "unassigned".
    color_by : {"cluster", "label"}
        The colouring shown first (the other is a button away when both are given).
    audio : {"embed", "link", "none"}
        See the module docstring.
    audio_seconds : float
        Longest embedded preview, from the start of the clip (or of its span).
    spans : sequence of (start_s or None, end_s or None), optional
        Part of each file that is the clip (segments of long recordings).
    title, subtitle : str
        Shown above the map (escaped).

    Returns
    -------
    WrittenMap

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> page = os.path.join(tempfile.mkdtemp(), "map.html")
    >>> written = write_map(page, np.zeros((2, 2)), ["a.wav", "b.wav"], clusters=[0, 1],
    ...                     audio="none")
    >>> written.n_points, os.path.getsize(page) > 1_000_000  # plotly.js is inside
    (2, True)
    """
    path = Path(path)
    coordinates = np.asarray(coordinates, dtype=np.float64)
    files = [str(file) for file in files]
    n = len(files)
    if coordinates.shape != (n, 2):
        raise ParameterError(f"expected coordinates of shape ({n}, 2), got {coordinates.shape}")
    if not np.isfinite(coordinates).all():
        raise ParameterError("expected finite coordinates, got NaN or infinity")
    labels = _column(labels, n, "labels", str)
    clusters = _column(clusters, n, "clusters", int)
    if color_by not in COLOR_BY:
        raise ParameterError(f"expected color_by in {COLOR_BY}, got {color_by!r}")
    if labels is None and clusters is None:
        raise ParameterError("expected labels, clusters or both to colour the map")
    if color_by == "label" and labels is None:
        color_by = "cluster"
    elif color_by == "cluster" and clusters is None:
        color_by = "label"
    if audio not in AUDIO_MODES:
        raise ParameterError(f"expected audio in {AUDIO_MODES}, got {audio!r}")
    if spans is not None and len(spans) != n:
        raise ParameterError(f"expected {n} spans, got {len(spans)}")
    path.parent.mkdir(parents=True, exist_ok=True)

    sources, failures = _audio_sources(files, spans, audio, audio_seconds, path.parent)
    cluster_names = None if clusters is None else [
        _UNASSIGNED if c < 0 else f"cluster {c}" for c in clusters
    ]
    figure_html = _figure_html(coordinates, files, labels, cluster_names, color_by)
    data = {
        "files": files,
        "labels": labels,
        "clusters": cluster_names,
        "audio": sources,
    }
    page = _PAGE.format(
        title=html.escape(title),
        subtitle=html.escape(subtitle),
        figure=figure_html,
        data=_script_json(data),
        script=_SCRIPT,
    )
    path.write_text(page, encoding="utf-8")
    return WrittenMap(path, n, audio, failures)


def _column(values, n: int, name: str, kind):
    if values is None:
        return None
    values = [kind(value) for value in values]
    if len(values) != n:
        raise ParameterError(f"expected {n} {name}, got {len(values)}")
    return values


# ------------------------------------------------------------------ audio
def _audio_sources(files, spans, mode, seconds, page_folder: Path):
    if mode == "none":
        return [None] * len(files), []
    if mode == "link":
        return [_relative_url(file, page_folder) for file in files], []
    if not seconds > 0:
        raise ParameterError(f"expected audio_seconds > 0, got {seconds}")
    sources, failures = [], []
    for index, file in enumerate(files):
        start_s, end_s = spans[index] if spans is not None else (None, None)
        try:
            sources.append(_preview_uri(file, start_s, end_s, seconds))
        except AudioError as error:
            sources.append(None)
            failures.append((file, error.reason))
    return sources, failures


def _preview_uri(file, start_s, end_s, seconds) -> str:
    """The first ``seconds`` of a clip as a mono 16 kHz MP3 data URI."""
    import soundfile as sf

    from ..audio import info, load

    start = start_s or 0.0
    stop = start + seconds
    if end_s is not None:
        stop = min(stop, end_s)
    else:
        stop = min(stop, info(file).duration_s)
    y, sr = load(file, sr=PREVIEW_SR, start_s=start_s, end_s=stop)
    buffer = io.BytesIO()
    # The encoder clips at full scale rather than wrapping; keep peaks inside it anyway.
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > 1.0:
        y = y / peak
    sf.write(buffer, y, sr, format="MP3", subtype="MPEG_LAYER_III", compression_level=0.5)
    return "data:audio/mpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _relative_url(file, page_folder: Path) -> str:
    target = Path(file).resolve()
    try:
        relative = os.path.relpath(target, page_folder.resolve())
    except ValueError:  # another drive on Windows: no relative path exists
        return target.as_uri()
    return quote(Path(relative).as_posix())


# ----------------------------------------------------------------- figure
def _figure_html(coordinates, files, labels, cluster_names, color_by) -> str:
    import plotly.graph_objects as go

    names = [Path(file).name for file in files]
    hover = []
    for i, name in enumerate(names):
        lines = [f"<b>{_plotly_text(name)}</b>"]
        if labels is not None:
            lines.append(f"label: {_plotly_text(labels[i])}")
        if cluster_names is not None:
            lines.append(_plotly_text(cluster_names[i]))
        hover.append("<br>".join(lines))
    hover = np.array(hover, dtype=object)

    groupings = []  # (colouring, group name per point)
    if cluster_names is not None:
        groupings.append(("cluster", cluster_names))
    if labels is not None:
        groupings.append(("label", labels))
    figure = go.Figure()
    visible_by = {}
    palette = _palette()
    for colouring, groups in groupings:
        groups = np.array(groups, dtype=object)
        visible_by[colouring] = []
        for position, group in enumerate(_group_order(groups)):
            colour = "lightgrey" if group == _UNASSIGNED else palette[position % len(palette)]
            members = np.flatnonzero(groups == group)
            figure.add_trace(go.Scatter(
                x=coordinates[members, 0], y=coordinates[members, 1], mode="markers",
                name=_plotly_text(group), customdata=members, hovertext=hover[members],
                hoverinfo="text", visible=colouring == color_by,
                marker={"size": 8, "opacity": 0.85, "color": colour,
                        "line": {"width": 0.5, "color": "white"}},
            ))
            visible_by[colouring].append(len(figure.data) - 1)
    buttons = []
    for colouring in visible_by:
        visible = [index in visible_by[colouring] for index in range(len(figure.data))]
        buttons.append({"label": f"colour by {colouring}", "method": "restyle",
                        "args": [{"visible": visible}]})
    figure.update_layout(
        template="plotly_white", hovermode="closest", clickmode="event",
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"itemsizing": "constant"},
        xaxis={"visible": False}, yaxis={"visible": False, "scaleanchor": "x"},
        updatemenus=[{
            "type": "buttons", "direction": "right", "x": 0, "y": 1.08, "xanchor": "left",
            "buttons": buttons, "active": list(visible_by).index(color_by), "showactive": True,
        }] if len(buttons) > 1 else [],
    )
    return figure.to_html(
        full_html=False, include_plotlyjs=True, div_id="earmark-map",
        default_height="100%", config={"displaylogo": False, "responsive": True},
    )


def _plotly_text(text: str) -> str:
    """Text for plotly's pseudo-HTML: no tag can open without '<'. Quotes stay as they are,
    since plotly decodes ``&lt; &gt; &amp;`` but would show ``&quot;`` literally."""
    return html.escape(text, quote=False)


def _palette() -> list[str]:
    """50 distinct colours: collections often have more classes than Plotly's default 10."""
    from plotly.colors import qualitative

    return list(qualitative.Dark24) + list(qualitative.Alphabet)


def _group_order(groups: np.ndarray) -> list[str]:
    """Clusters in number order (unassigned last), labels alphabetically."""
    unique = set(groups.tolist())

    def key(name):
        if name == _UNASSIGNED:
            return (2, 0, "")
        if name.startswith("cluster ") and name[8:].isdigit():
            return (0, int(name[8:]), "")
        return (1, 0, name)

    return sorted(unique, key=key)


def _script_json(data) -> str:
    """JSON safe inside a <script> element: no '<' can close it early."""
    return json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_SCRIPT = """
(function () {
  var data = JSON.parse(document.getElementById("earmark-data").textContent);
  var map = document.getElementById("earmark-map");
  var player = document.getElementById("earmark-audio");
  function show(index) {
    document.getElementById("earmark-file").textContent = data.files[index];
    function text(id, values) {
      document.getElementById(id).textContent = values ? values[index] : "-";
    }
    text("earmark-label", data.labels);
    text("earmark-cluster", data.clusters);
    var status = document.getElementById("earmark-status");
    var source = data.audio[index];
    if (!source) {
      player.removeAttribute("src");
      status.textContent = "no sound for this clip";
      return;
    }
    status.textContent = "";
    player.src = source;
    player.play().catch(function (error) {
      status.textContent = "press play to listen (" + error.name + ")";
    });
  }
  function attach() {
    map.on("plotly_click", function (event) {
      if (event.points.length) { show(event.points[0].customdata); }
    });
  }
  if (map.on) { attach(); } else { window.addEventListener("load", attach); }
  window.earmarkShow = show;
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
  html, body {{ height: 100%; margin: 0; font-family: system-ui, sans-serif; }}
  body {{ display: flex; flex-direction: column; }}
  header {{ padding: 8px 16px; border-bottom: 1px solid #ddd; }}
  header h1 {{ font-size: 1.1em; margin: 0; }}
  header p {{ margin: 2px 0 0; color: #555; font-size: 0.9em; }}
  main {{ flex: 1; display: flex; min-height: 0; }}
  #earmark-plot {{ order: 1; flex: 1; min-width: 0; overflow: hidden; }}
  #earmark-plot > div {{ height: 100%; }}
  aside {{ order: 2; flex: none; width: 320px; padding: 12px 16px;
          border-left: 1px solid #ddd; overflow-wrap: anywhere; }}
  aside dt {{ font-weight: bold; margin-top: 8px; }}
  aside dd {{ margin: 0; }}
  audio {{ width: 100%; margin-top: 12px; }}
  #earmark-status {{ color: #a50; font-size: 0.9em; }}
</style>
</head>
<body>
<header><h1>{title}</h1><p>{subtitle}</p></header>
<main>
<!-- Before the plot, so plotly.js measures the width that is left for it. -->
<aside>
  <p>Click a point to hear it.</p>
  <dl>
    <dt>file</dt><dd id="earmark-file">-</dd>
    <dt>label</dt><dd id="earmark-label">-</dd>
    <dt>cluster</dt><dd id="earmark-cluster">-</dd>
  </dl>
  <audio id="earmark-audio" controls preload="none"></audio>
  <p id="earmark-status"></p>
</aside>
<div id="earmark-plot">{figure}</div>
</main>
<script type="application/json" id="earmark-data">{data}</script>
<script>{script}</script>
</body>
</html>
"""
