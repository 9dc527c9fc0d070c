"""Small helpers for self-contained HTML pages: sounds and pictures inlined as data URIs.

Pages made here must open from a single file (mailed, attached to a report, opened
offline), so nothing is linked: audio is a base64 WAV and figures are base64 PNGs.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np

from ..exceptions import ParameterError

__all__ = ["escape", "page", "png_data_uri", "wav_data_uri"]


def escape(text) -> str:
    """Escape any value for HTML text or a quoted attribute (``&``, ``<``, ``>``, quotes)."""
    return html.escape(str(text), quote=True)


def wav_data_uri(y, sr: int) -> str:
    """Encode a waveform as a 16-bit PCM WAV ``data:`` URI for an ``<audio>`` element.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,) or (n_samples, n_channels)]
        Audio in [-1, 1]; louder samples are clipped, not wrapped.
    sr : int
        Sample rate in Hz.

    Returns
    -------
    str
        ``data:audio/wav;base64,...``

    Examples
    --------
    >>> wav_data_uri(np.zeros(800), 8000)[:22]
    'data:audio/wav;base64,'
    """
    import soundfile

    y = np.asarray(y, dtype=np.float64)
    if y.ndim not in (1, 2) or y.shape[0] == 0:
        raise ParameterError(f"expected a non-empty 1-D or 2-D waveform, got shape {y.shape}")
    if int(sr) <= 0:
        raise ParameterError(f"expected a positive sample rate, got {sr}")
    # Non-finite samples would make the whole file unplayable in some browsers.
    y = np.clip(np.nan_to_num(y, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
    buffer = io.BytesIO()
    soundfile.write(buffer, y, int(sr), format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def png_data_uri(fig, *, dpi: int = 110) -> str:
    """Render a matplotlib figure as a PNG ``data:`` URI for an ``<img>`` element.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    dpi : int
        Resolution of the picture.

    Returns
    -------
    str
        ``data:image/png;base64,...``
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
img { max-width: 100%; height: auto; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
audio { vertical-align: middle; }
.note { color: #555; font-size: 0.92em; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.92em; }
""".strip()


def page(title: str, body_html: str) -> str:
    """Wrap body HTML in a complete, self-contained HTML5 document.

    Parameters
    ----------
    title : str
        Plain text; it is escaped and shown as the page title and first heading.
    body_html : str
        Trusted HTML for the body (escape any user text in it with :func:`escape`).

    Returns
    -------
    str

    Examples
    --------
    >>> "<title>a &lt; b</title>" in page("a < b", "<p>hi</p>")
    True
    """
    safe_title = escape(title)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{safe_title}</title>\n<style>\n{_CSS}\n</style>\n</head>\n"
        f"<body>\n<h1>{safe_title}</h1>\n{body_html}\n</body>\n</html>\n"
    )
