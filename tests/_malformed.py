"""A corpus of malformed and edge-case audio files, generated from real recordings.

:func:`write_corpus` writes, under two class folders (``zero`` and ``one``, FSDD digits),
real clips in every form a collection really holds (other formats, depths, channel
counts and rates, awkward names) and files broken in every way we know of (empty, text,
other file types under audio names, cut short, headers that lie, non-finite samples,
dangling links). Each bad file comes with a word its reason must contain. Everything
is made at test time from ``fsdd/`` and ``philharmonia-mini/``; nothing is stored.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf


@dataclass
class Corpus:
    """Where the corpus is and what each file is.

    Attributes
    ----------
    root : Path
        The dataset folder (class folders ``zero`` and ``one``).
    good : dict of Path to str
        Every good file and its label.
    bad : dict of Path to str
        Every bad file and a word (lower case) its reason contains.
    lying : list of Path
        The bad files whose header declares an absurd sample rate or length.
    """

    root: Path
    good: dict[Path, str] = field(default_factory=dict)
    bad: dict[Path, str] = field(default_factory=dict)
    lying: list[Path] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.good) + len(self.bad)


def _with_rate(data: bytes, rate: int) -> bytes:
    data = bytearray(data)
    struct.pack_into("<I", data, data.find(b"fmt ") + 12, rate)
    return bytes(data)


def _patched_fmt(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    """A WAV with one field of its ``fmt `` chunk (at ``offset`` after the id) replaced."""
    data = bytearray(data)
    struct.pack_into(fmt, data, data.find(b"fmt ") + offset, value)
    return bytes(data)


def _write_m4a(path: Path, y: np.ndarray, sr: int) -> bool:
    try:
        import av
    except ImportError:
        return False
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=sr)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(y[None, :].astype(np.float32), format="fltp",
                                           layout="mono")
        frame.sample_rate = sr
        for packet in list(stream.encode(frame)) + list(stream.encode(None)):
            container.mux(packet)
    return True


def write_corpus(root: Path, fsdd_dir: Path, philharmonia_dir: Path) -> Corpus:
    """Write the corpus under ``root`` (see module docstring) and describe it."""
    recordings = Path(fsdd_dir) / "recordings"
    corpus = Corpus(Path(root))
    speakers = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
    sources = {
        label: [recordings / f"{digit}_{speaker}_{take}.wav"
                for speaker in speakers for take in (1, 2)]
        for label, digit in (("zero", "0"), ("one", "1"))
    }
    for label in sources:
        (corpus.root / label).mkdir(parents=True, exist_ok=True)

    def good(label: str, name: str) -> Path:
        path = corpus.root / label / name
        corpus.good[path] = label
        return path

    def bad(label: str, name: str, word: str, data: bytes | None = None) -> Path:
        path = corpus.root / label / name
        if data is not None:
            path.write_bytes(data)
        corpus.bad[path] = word
        return path

    # ---------------------------------------------------------------- good files
    for label, paths in sources.items():
        for source in paths[:6]:  # plain copies: the bulk of any collection
            good(label, source.name).write_bytes(source.read_bytes())
    for label, paths in sources.items():
        y, sr = sf.read(paths[6], dtype="float32")
        stem = f"{label}_{paths[6].stem}"
        sf.write(good(label, f"{stem} stereo.wav"), np.stack([y, 0.5 * y], axis=1), sr)
        sf.write(good(label, f"{stem}_24bit.wav"), y, sr, subtype="PCM_24")
        sf.write(good(label, f"{stem}_float.wav"), y, sr, subtype="FLOAT")
        sf.write(good(label, f"{stem}.flac"), y, sr, format="FLAC")
        sf.write(good(label, f"{stem}.ogg"), y, sr, format="OGG", subtype="VORBIS")
        sf.write(good(label, f"{stem}.aiff"), y, sr, format="AIFF")
        sf.write(good(label, f"{stem}.UPPER.WAV"), y[::-1].copy(), sr)
        sf.write(good(label, f"{stem} it's \"quoted\" & spaced.wav"), 0.9 * y, sr)
        sf.write(good(label, f"{stem}_café ☕ 声音.wav"), 0.8 * y, sr)
        long_name = f"{stem}_" + "n" * (240 - len(stem) - 5) + ".wav"
        sf.write(good(label, long_name), 0.7 * y, sr)
        sf.write(good(label, f"{stem}_a.wav"), 0.6 * y, sr)
        sf.write(good(label, f"{stem}_a.wav.wav"), 0.5 * y, sr)
        z, z_sr = sf.read(paths[7], dtype="float32")
        sf.write(good(label, f"{label}_at_1000hz.wav"), z[::8].copy(), 1000)  # rare but real
        sf.write(good(label, f"{label}_short.wav"), z[: z_sr // 10], z_sr)  # 0.1 s
        if _write_m4a(corpus.root / label / f"{stem}.m4a", y, sr):
            good(label, f"{stem}.m4a")
        sf.write(good(label, f"{stem}.opus"), y, sr, format="OGG", subtype="OPUS")
    mp3 = sorted(Path(philharmonia_dir).glob("*/*.mp3"))[0]
    good("one", "philharmonia note.mp3").write_bytes(mp3.read_bytes())

    # ----------------------------------------------------------------- bad files
    wav = sources["zero"][8].read_bytes()
    y, sr = sf.read(sources["zero"][8], dtype="float32")
    other = sources["one"][8].read_bytes()
    bad("zero", "empty.wav", "empty", b"")
    bad("one", "empty.flac", "empty", b"")
    bad("zero", "notes.wav", "not readable", b"meeting notes, not audio\n" * 40)
    bad("one", "notes.mp3", "not readable", b"meeting notes, not audio\n" * 40)
    bad("zero", "notes.flac", "not readable", b"meeting notes, not audio\n" * 40)
    bad("one", "notes.ogg", "not readable", b"meeting notes, not audio\n" * 40)
    bad("zero", "notes.m4a", "not readable", b"meeting notes, not audio\n" * 40)
    bad("one", "notes.opus", "not readable", b"meeting notes, not audio\n" * 40)
    bad("zero", "utf16.wav", "not readable", "texte, pas du son\n".encode("utf-16") * 40)
    bad("one", "page.mp3", "not readable",
        b"<!DOCTYPE html><html><body>404 Not Found</body></html>\n" * 20)
    bad("zero", "picture.wav", "not readable",
        b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    bad("one", "archive.flac", "not readable", b"PK\x03\x04" + bytes(1000))
    bad("zero", "zeros.wav", "not readable", bytes(4096))
    bad("one", "zeros.mp3", "not readable", bytes(4096))
    bad("zero", "riff only.wav", "not readable", b"RIFF\x04\x00\x00\x00WAVE")
    bad("one", "cut in header.wav", "not readable", other[:20])
    bad("zero", "half.wav", "truncated", wav[: len(wav) // 2])
    bad("one", "data size lies.wav", "truncated",
        wav[:40] + struct.pack("<I", 0x7FFFFFF0) + wav[44:])
    for label, (subtype, fmt, ext) in zip(
        ("zero", "one", "zero", "one"),
        (("PCM_16", "FLAC", "flac"), ("VORBIS", "OGG", "ogg"), ("OPUS", "OGG", "opus"),
         ("PCM_16", "AIFF", "aiff")),
    ):
        whole = corpus.root / label / f"whole.{ext}"
        sf.write(whole, y, sr, format=fmt, subtype=subtype)
        data = whole.read_bytes()
        whole.unlink()
        bad(label, f"half.{ext}", "truncated", data[: len(data) // 2])
    mp3_bytes = mp3.read_bytes()
    bad("zero", "cut.mp3", "truncated", mp3_bytes[:400])
    bad("one", "id3 only.mp3", "truncated mp3", b"ID3\x03\x00\x00\x00\x00\x00\x0a" + bytes(10))
    for label, rate in (("zero", 0), ("one", 1), ("zero", 999), ("one", 2**31 - 1),
                        ("zero", 2**31), ("one", 10**9), ("zero", 2**32 - 1)):
        path = bad(label, f"rate {rate} Hz.wav", "implausible sample rate", _with_rate(wav, rate))
        corpus.lying.append(path)
    flac = corpus.root / "one" / "lying.flac"
    sf.write(flac, y, sr, format="FLAC")
    data = bytearray(flac.read_bytes())
    flac.unlink()
    data[18:26] = (int.from_bytes(data[18:26], "big") | ((1 << 36) - 1)).to_bytes(8, "big")
    corpus.lying.append(bad("one", "lying.flac", "more than", bytes(data)))
    bad("zero", "no channels.wav", "not readable", _patched_fmt(wav, 10, "<H", 0))
    bad("one", "unknown codec.wav", "not readable", _patched_fmt(wav, 8, "<H", 0x1234))
    silent = np.zeros(0, dtype=np.float32)
    sf.write(bad("one", "zero length.wav", "zero length"), silent, sr)
    for label, value, word in (("zero", np.nan, "nan"), ("one", np.inf, "inf"),
                               ("zero", -np.inf, "inf")):
        broken = y.copy()
        broken[len(broken) // 2] = value
        tag = {"nan": "nan", "inf": "inf"}[word] + ("-" if value == -np.inf else "")
        sf.write(bad(label, f"non-finite {tag}.wav", word), broken, sr, subtype="FLOAT")
    late = np.resize(y, 3 * sr)
    late[int(2.5 * sr)] = np.nan
    sf.write(bad("one", "nan late.wav", "nan"), late, sr, subtype="DOUBLE")
    os.symlink(corpus.root / "gone.wav", bad("zero", "dangling link.wav", "not found"))
    bad("one", "déjà vu ✓ empty.wav", "empty", b"")
    bad("zero", "x" * 240 + ".wav", "empty", b"")
    return corpus
