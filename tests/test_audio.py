"""Audio input: formats, bit depths, mix-down, streamed resampling, spans and bad files.

Every file here is real audio (a spoken digit from FSDD, a Philharmonia note) converted
with soundfile into ``tmp_path``, so each format and depth goes through libsndfile's own
encoder and decoder.
"""

from __future__ import annotations

import struct
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import soxr

from earmark.audio import READ_BLOCK_FRAMES, AudioInfo, info, load, n_samples_at, stream
from earmark.exceptions import AudioError, ParameterError

OUT_SR = 16000


# ----------------------------------------------------------------------------- sources
@pytest.fixture(scope="module")
def speech(fsdd_dir) -> tuple[np.ndarray, int]:
    """About four seconds of speech at 8 kHz: ten digits of one speaker, end to end."""
    files = sorted((fsdd_dir / "recordings").glob("*_jackson_0.wav"))
    files = files or sorted((fsdd_dir / "recordings").glob("*.wav"))[:10]
    clips = [sf.read(path, dtype="float32") for path in files]
    assert {sr for _, sr in clips} == {8000}
    y = np.concatenate([clip for clip, _ in clips])
    # Normalised so that every bit depth, down to 8 bits, keeps the speech audible.
    return (0.8 * y / np.abs(y).max()).astype(np.float32), 8000


@pytest.fixture(scope="module")
def music(philharmonia_dir) -> tuple[np.ndarray, int]:
    """A Philharmonia cello note of a second or more, decoded from its MP3 at 44.1 kHz."""
    for path in sorted(philharmonia_dir.glob("cello/*.mp3")):
        y, sr = sf.read(path, dtype="float32")
        if y.size >= 1.0 * sr:
            return y, sr
    pytest.skip("no Philharmonia cello note of a second or more")


def _write(path, y, sr, fmt="WAV", subtype="FLOAT"):
    sf.write(path, y, sr, format=fmt, subtype=subtype)
    return path


def _snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    error = np.sum((reference.astype(np.float64) - estimate) ** 2)
    return float(10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / error))


# ----------------------------------------------------------------- formats and depths
#: (id, format, subtype, extension, bits): bits=None for lossy codecs.
FORMATS = [
    ("wav-u8", "WAV", "PCM_U8", ".wav", 8),
    ("wav-16", "WAV", "PCM_16", ".wav", 16),
    ("wav-24", "WAV", "PCM_24", ".wav", 24),
    ("wav-32", "WAV", "PCM_32", ".wav", 32),
    ("wav-float", "WAV", "FLOAT", ".wav", 32),
    ("wav-double", "WAV", "DOUBLE", ".wav", 64),
    ("flac-16", "FLAC", "PCM_16", ".flac", 16),
    ("flac-24", "FLAC", "PCM_24", ".flac", 24),
    ("aiff-16", "AIFF", "PCM_16", ".aiff", 16),
    ("ogg-vorbis", "OGG", "VORBIS", ".ogg", None),
    ("ogg-opus", "OGG", "OPUS", ".opus", None),
    ("mp3", "MP3", "MPEG_LAYER_III", ".mp3", None),
]


@pytest.mark.parametrize(
    "fmt, subtype, ext, bits", [f[1:] for f in FORMATS], ids=[f[0] for f in FORMATS]
)
def test_every_format_and_depth_loads_as_mono_float32(tmp_path, speech, fmt, subtype, ext, bits):
    y, sr = speech
    path = _write(tmp_path / f"speech{ext}", y, sr, fmt, subtype)
    loaded, loaded_sr = load(path)
    assert loaded_sr == sr
    assert loaded.dtype == np.float32 and loaded.ndim == 1
    assert loaded.shape == y.shape, f"expected {y.shape[0]} samples, got {loaded.shape[0]}"
    if bits is not None:
        # One least significant bit: libsndfile scales by 2**(bits-1) - 1 on the way in.
        lsb = 2.0 ** -(min(bits, 24) - 1)
        error = float(np.abs(loaded - y).max())
        assert error <= 1.01 * lsb, f"expected at most one LSB ({lsb:.2e}), got {error:.2e}"
    else:
        snr = _snr_db(y, loaded)
        assert snr > 15, f"expected the codec to keep the speech (SNR > 15 dB), got {snr:.1f} dB"
    # Our block-wise reading equals libsndfile's one-shot reading (mpg123 rounds its
    # float output a little differently when asked for fewer samples at a time).
    exact = bits is not None
    np.testing.assert_allclose(
        loaded, sf.read(path, dtype="float32")[0], rtol=0, atol=0 if exact else 1e-6
    )


@pytest.mark.parametrize(
    "fmt, subtype, ext, atol",
    [
        ("WAV", "FLOAT", ".wav", 0.0),
        ("FLAC", "PCM_24", ".flac", 2**-23),
        ("WAV", "PCM_16", ".wav", 2**-15),
    ],
)
def test_multichannel_files_mix_down_to_the_mean_of_their_channels(
    tmp_path, speech, fmt, subtype, ext, atol
):
    y, sr = speech
    channels = np.stack([y, 0.5 * y[::-1], -0.25 * y], axis=1)
    for count in (2, 3):
        path = _write(tmp_path / f"multi{count}{ext}", channels[:, :count], sr, fmt, subtype)
        loaded, _ = load(path)
        decoded = sf.read(path, dtype="float32")[0]
        np.testing.assert_allclose(loaded, decoded.mean(axis=1), rtol=0, atol=1e-7)
        expected = channels[:, :count].mean(axis=1)
        assert np.abs(loaded - expected).max() <= atol + 1e-7
        # The mix-down is not one channel picked: it differs from each of them.
        assert min(np.abs(loaded - channels[:, c]).max() for c in range(count)) > 0.01


# ------------------------------------------------------------------------ resampling
@pytest.mark.parametrize("file_sr", [8000, 16000, 22050, 44100, 48000])
def test_streamed_resampling_equals_one_shot_soxr(tmp_path, music, file_sr):
    y44, sr44 = music
    y = y44 if file_sr == sr44 else soxr.resample(y44, sr44, file_sr, quality="HQ")
    path = _write(tmp_path / f"music_{file_sr}.wav", y, file_sr)
    expected = y if file_sr == OUT_SR else soxr.resample(y, file_sr, OUT_SR, quality="HQ")
    assert n_samples_at(info(path), OUT_SR) == expected.size
    for block_frames in (997, 4096, READ_BLOCK_FRAMES):
        blocks = list(stream(path, sr=OUT_SR, block_frames=block_frames))
        assert all(block.dtype == np.float32 and block.ndim == 1 for block in blocks)
        streamed = np.concatenate(blocks)
        assert streamed.size == expected.size, (
            f"block_frames={block_frames}: expected {expected.size} samples, got {streamed.size}"
        )
        np.testing.assert_allclose(streamed, expected, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(load(path, sr=OUT_SR)[0], streamed)


def test_resampled_stereo_span_equals_soxr_of_the_mixed_span(tmp_path, music):
    y44, sr = music
    stereo = np.stack([y44, 0.3 * y44[::-1]], axis=1)
    path = _write(tmp_path / "stereo.wav", soxr.resample(stereo, sr, 48000, quality="HQ"), 48000)
    decoded = sf.read(path, dtype="float32")[0].mean(axis=1, dtype=np.float32)
    start, stop = int(round(0.25 * 48000)), int(round(0.75 * 48000))
    expected = soxr.resample(decoded[start:stop], 48000, OUT_SR, quality="HQ")
    loaded, loaded_sr = load(path, sr=OUT_SR, start_s=0.25, end_s=0.75)
    assert loaded_sr == OUT_SR and loaded.size == expected.size == 8000
    np.testing.assert_allclose(loaded, expected, rtol=0, atol=1e-6)


def test_n_samples_at_rounds_like_soxr():
    # soxr gives round(n * out / in), halves up; the old ceil() was off by one here.
    for file_sr, n in [(22050, 7), (44100, 1000), (48000, 300007), (32000, 1), (11025, 23841)]:
        header = AudioInfo("x.wav", sr=file_sr, n_samples=n, channels=1, format="WAV", subtype="")
        expected = soxr.resample(np.ones(n, dtype=np.float32), file_sr, OUT_SR, quality="HQ").size
        assert n_samples_at(header, OUT_SR) == expected, f"{file_sr} Hz, {n} samples"


# ----------------------------------------------------------------------------- spans
@pytest.mark.parametrize(
    "fmt, subtype, ext, atol",
    [
        ("WAV", "PCM_16", ".wav", 0.0),
        ("FLAC", "PCM_16", ".flac", 0.0),
        ("OGG", "VORBIS", ".ogg", 1e-6),
        ("MP3", "MPEG_LAYER_III", ".mp3", 1e-6),
    ],
)
def test_spans_are_sample_exact_slices(tmp_path, speech, fmt, subtype, ext, atol):
    y, sr = speech
    path = _write(tmp_path / f"speech{ext}", y, sr, fmt, subtype)
    full, _ = load(path)
    for start_s, end_s in [(0.3, 1.2), (None, 0.5), (1.0, None), (0.0, 1e6), (0.12345, 0.98765)]:
        start = 0 if start_s is None else int(round(start_s * sr))
        stop = full.size if end_s is None else min(full.size, int(round(end_s * sr)))
        part, _ = load(path, start_s=start_s, end_s=end_s)
        assert part.size == stop - start, (
            f"span {start_s}-{end_s}: expected {stop - start} samples, got {part.size}"
        )
        np.testing.assert_allclose(part, full[start:stop], rtol=0, atol=atol)
        resampled, _ = load(path, sr=OUT_SR, start_s=start_s, end_s=end_s)
        expected = soxr.resample(full[start:stop], sr, OUT_SR, quality="HQ")
        np.testing.assert_allclose(resampled, expected, rtol=0, atol=max(atol, 1e-6))


@pytest.mark.parametrize(
    "kwargs",
    [{"start_s": -1.0}, {"start_s": 1.0, "end_s": 1.0}, {"start_s": 2.0, "end_s": 1.0}, {"sr": 0}],
)
def test_bad_span_or_rate_is_a_parameter_error(tmp_path, speech, kwargs):
    path = _write(tmp_path / "speech.wav", *speech)
    with pytest.raises(ParameterError):
        load(path, **kwargs)


# ------------------------------------------------------------------------- bad files
def _cut(path, keep):
    data = path.read_bytes()
    path.write_bytes(data[: keep(data)])
    return path


def _missing(tmp, y, sr):
    return tmp / "missing.wav"


def _empty(tmp, y, sr):
    (tmp / "empty.wav").write_bytes(b"")
    return tmp / "empty.wav"


def _folder(tmp, y, sr):
    (tmp / "folder.wav").mkdir()
    return tmp / "folder.wav"


def _text(tmp, y, sr):
    (tmp / "notes.wav").write_text("these are my notes, not a recording\n" * 20)
    return tmp / "notes.wav"


def _noise_bytes(tmp, y, sr):
    (tmp / "noise.mp3").write_bytes(np.random.default_rng(0).bytes(20000))
    return tmp / "noise.mp3"


def _truncated(fmt, subtype, ext):
    def make(tmp, y, sr):
        path = _write(tmp / f"cut{ext}", y, sr, fmt, subtype)
        return _cut(path, lambda data: len(data) // 2)

    return make


def _ogg_cut_at_page(tmp, y, sr):
    # Cut exactly before the last page: every page left is whole, none ends the stream.
    path = _write(tmp / "cut_at_page.ogg", y, sr, "OGG", "VORBIS")
    return _cut(path, lambda data: data.rfind(b"OggS"))


def _non_finite(value):
    def make(tmp, y, sr):
        y = y.copy()
        y[y.size // 2] = value
        return _write(tmp / f"bad_{str(value).lower()}.wav", y, sr, "WAV", "FLOAT")

    return make


def _header_only(tmp, y, sr):
    return _write(tmp / "header_only.wav", np.zeros(0, dtype=np.float32), sr, "WAV", "PCM_16")


BAD_FILES = {
    "missing": (_missing, "not found"),
    "empty": (_empty, "empty"),
    "folder": (_folder, "folder"),
    "text-named-wav": (_text, "not readable as audio"),
    "random-bytes-named-mp3": (_noise_bytes, "not readable as audio"),
    "truncated-wav-16": (_truncated("WAV", "PCM_16", ".wav"), "truncated"),
    "truncated-wav-24": (_truncated("WAV", "PCM_24", ".wav"), "truncated"),
    "truncated-wav-float": (_truncated("WAV", "FLOAT", ".wav"), "truncated"),
    "truncated-rf64": (_truncated("RF64", "PCM_16", ".rf64"), "truncated"),
    "truncated-aiff": (_truncated("AIFF", "PCM_16", ".aiff"), "truncated"),
    "truncated-flac": (_truncated("FLAC", "PCM_16", ".flac"), "truncated"),
    "truncated-mp3": (_truncated("MP3", "MPEG_LAYER_III", ".mp3"), "truncated"),
    "truncated-ogg-mid-page": (_truncated("OGG", "VORBIS", ".ogg"), "truncated"),
    "truncated-ogg-at-page": (_ogg_cut_at_page, "truncated"),
    "nan-sample": (_non_finite(np.nan), "non-finite"),
    "inf-sample": (_non_finite(np.inf), "non-finite"),
    "minus-inf-sample": (_non_finite(-np.inf), "non-finite"),
    "zero-length-wav": (_header_only, "zero length"),
}


@pytest.mark.parametrize("make, reason", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_bad_file_raises_one_audio_error_naming_it(tmp_path, speech, make, reason):
    path = make(tmp_path, *speech)
    for read in (lambda: load(path), lambda: list(stream(path, sr=OUT_SR))):
        with pytest.raises(AudioError) as caught:
            read()
        message = str(caught.value)
        assert path.name in message, f"expected the file name {path.name!r} in {message!r}"
        assert caught.value.path == str(path)
        assert reason in message, f"expected {reason!r} in {message!r}"


def test_start_past_the_end_names_the_file(tmp_path, speech):
    path = _write(tmp_path / "short.wav", *speech)
    duration_s = speech[0].size / speech[1]
    with pytest.raises(AudioError, match="short.wav.*past the end"):
        load(path, start_s=duration_s + 0.5)


def test_nan_error_says_where_the_sample_is(tmp_path, speech):
    y, sr = speech
    y = y.copy()
    y[3 * sr + 1200] = np.nan
    path = _write(tmp_path / "nan_late.wav", y, sr)
    with pytest.raises(AudioError, match=r"nan_late\.wav: non-finite sample .* at 3\.150 s"):
        load(path, sr=OUT_SR)


# ------------------------------------------------- whole files that must not be flagged
def test_wav_written_while_recording_is_read_to_its_end(tmp_path, speech):
    # A recorder that never went back to fill in the sizes leaves 0xFFFFFFFF there.
    y, sr = speech
    path = _write(tmp_path / "recording.wav", y, sr, "WAV", "PCM_16")
    data = bytearray(path.read_bytes())
    at = data.find(b"data")
    data[4:8] = data[at + 4 : at + 8] = struct.pack("<I", 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    np.testing.assert_array_equal(load(path)[0], sf.read(path, dtype="float32")[0])
    assert load(path)[0].size == y.size


def test_wav_with_a_chunk_after_its_data_is_whole(tmp_path, speech):
    y, sr = speech
    path = _write(tmp_path / "tagged.wav", y, sr, "WAV", "PCM_16")
    info_chunk = b"INFO" + b"ISFT" + struct.pack("<I", 2) + b"e\x00"
    data = bytearray(path.read_bytes()) + b"LIST" + struct.pack("<I", len(info_chunk)) + info_chunk
    data[4:8] = struct.pack("<I", len(data) - 8)
    path.write_bytes(bytes(data))
    assert load(path)[0].size == y.size


def test_real_mp3s_without_a_xing_header_load_in_full(philharmonia_dir):
    # libsndfile estimates these files' length counting their ID3 tag as audio, so the
    # header promises up to a quarter second more than there is; that is not truncation.
    shortfalls = []
    for path in sorted(philharmonia_dir.glob("*/*.mp3")):
        y, sr = load(path)
        assert y.size > 0 and np.isfinite(y).all()
        shortfalls.append((info(path).n_samples - y.size) / sr)
    assert len(shortfalls) >= 12
    assert max(shortfalls) > 0.2, "expected files whose header over-promises (the case under test)"


# ------------------------------------------------------------------------- long files
def test_a_long_file_streams_in_bounded_memory(tmp_path, speech):
    y, sr = speech
    minutes = 20
    path = tmp_path / "long.wav"
    total = minutes * 60 * sr
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype="PCM_16") as handle:
        written = 0
        while written < total:
            piece = y[: total - written]
            handle.write(piece)
            written += piece.size
    decoded_bytes = n_samples_at(info(path), OUT_SR) * 4

    tracemalloc.start()
    try:
        count = 0
        for block in stream(path, sr=OUT_SR):
            count += block.size
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert count == n_samples_at(info(path), OUT_SR) == 2 * total
    assert peak < decoded_bytes / 6, (
        f"expected streaming to hold well under the {decoded_bytes / 1e6:.0f} MB decoded, "
        f"peaked at {peak / 1e6:.1f} MB"
    )
    # The end of the file is where it should be, sample for sample.
    tail, _ = load(path, start_s=(total - 2 * sr) / sr)
    cycle = np.resize(y, total)
    np.testing.assert_allclose(tail, cycle[-2 * sr :], rtol=0, atol=2**-15)


# --------------------------------------------------------------- headers that lie
def _with_rate(source, target, rate: int):
    """A copy of a WAV file whose header declares ``rate`` (the samples are unchanged)."""
    data = bytearray(source.read_bytes())
    struct.pack_into("<I", data, data.find(b"fmt ") + 12, rate)
    target.write_bytes(bytes(data))
    return target


@pytest.mark.parametrize("rate", [1, 999, 2**31 - 1, 2**31, 10**9])
def test_a_forged_sample_rate_is_refused_with_the_file_named(tmp_path, speech, rate):
    y, sr = speech
    good = _write(tmp_path / "good.wav", y[: sr * 2], sr, subtype="PCM_16")
    forged = _with_rate(good, tmp_path / f"forged_{rate}.wav", rate)
    with pytest.raises(AudioError) as caught:
        list(stream(forged, sr=48000))
    assert caught.value.path == str(forged)
    assert f"implausible sample rate in the header: {rate} Hz" in caught.value.reason


def test_the_lowest_plausible_rate_upsamples_in_bounded_blocks(tmp_path, speech):
    """1 kHz to 48 kHz multiplies the samples by 48: no block may grow with the ratio."""
    y, sr = speech
    good = _write(tmp_path / "good.wav", y, sr, subtype="PCM_16")
    slow = _with_rate(good, tmp_path / "slow.wav", 1000)
    tracemalloc.start()
    try:
        sizes = [block.size for block in stream(slow, sr=48000)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(sizes) == n_samples_at(info(slow), 48000) == y.size * 48
    assert max(sizes) < 1.1 * READ_BLOCK_FRAMES  # soxr releases a little late
    assert peak < 12 * READ_BLOCK_FRAMES * 4, f"peaked at {peak / 1e6:.1f} MB"


def test_a_flac_header_promising_more_than_its_bytes_is_refused(tmp_path, speech):
    y, sr = speech
    data = bytearray(_write(tmp_path / "good.flac", y, sr, "FLAC", "PCM_16").read_bytes())
    # STREAMINFO's last 36 bits of bytes 18-25 are the total sample count: claim 2^36 - 1.
    fields = int.from_bytes(data[18:26], "big") | ((1 << 36) - 1)
    data[18:26] = fields.to_bytes(8, "big")
    forged = tmp_path / "forged.flac"
    forged.write_bytes(bytes(data))
    with pytest.raises(AudioError, match="more than .* bytes can hold") as caught:
        info(forged)
    assert caught.value.path == str(forged)


def test_a_truncated_mp3_is_called_truncated(tmp_path, philharmonia_dir):
    source = sorted(philharmonia_dir.glob("*/*.mp3"))[0]
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(source.read_bytes()[:400])
    with pytest.raises(AudioError, match="truncated MP3") as caught:
        load(cut)
    assert "does not exist" not in caught.value.reason


# --------------------------------------------------------------- what only FFmpeg reads
def _write_m4a(path, y, sr):
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as container:
        audio_stream = container.add_stream("aac", rate=sr)
        audio_stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(y[None, :], format="fltp", layout="mono")
        frame.sample_rate = sr
        for packet in list(audio_stream.encode(frame)) + list(audio_stream.encode(None)):
            container.mux(packet)
    return path


def test_m4a_is_read_through_ffmpeg_and_matches_the_source(tmp_path, speech):
    y, sr = speech
    path = _write_m4a(tmp_path / "phone.m4a", y, sr)
    header = info(path)
    assert header.decoder == "ffmpeg" and header.sr == sr and header.subtype == "aac"
    z, z_sr = load(path, sr=OUT_SR)
    assert z_sr == OUT_SR and np.isfinite(z).all()
    reference = soxr.resample(y, sr, OUT_SR)
    # AAC puts 1024 priming samples (at the file's rate) before the signal.
    delay = 1024 * OUT_SR // sr
    n = min(reference.size, z.size - delay)
    assert n > 0.9 * reference.size
    assert np.corrcoef(z[delay : delay + n], reference[:n])[0, 1] > 0.99
    # Spans and blocks give the same samples as the whole.
    joined = np.concatenate(list(stream(path, sr=OUT_SR, start_s=1.0, end_s=2.0)))
    np.testing.assert_allclose(joined, load(path, sr=OUT_SR, start_s=1.0, end_s=2.0)[0])
    assert abs(joined.size - OUT_SR) <= 1


def test_a_file_neither_decoder_reads_names_libsndfiles_reason(tmp_path):
    path = tmp_path / "notes.m4a"
    path.write_text("shopping list\n" * 50)
    with pytest.raises(AudioError, match="not readable as audio") as caught:
        info(path)
    assert caught.value.path == str(path)


def test_mp3_decoder_notes_name_the_file(tmp_path, philharmonia_dir, capfd):
    """libmpg123 prints on descriptor 2 itself; each of its lines comes back with the name."""
    source = sorted(philharmonia_dir.glob("*/*.mp3"))[5]
    data = bytearray(source.read_bytes())
    middle = len(data) // 3
    for index in range(middle, middle + 400):  # a burst of garbage inside the stream
        data[index] = 0xFF if index % 7 else 0xE3
    damaged = tmp_path / "damaged.mp3"
    damaged.write_bytes(bytes(data))
    capfd.readouterr()
    y, _ = load(damaged)
    assert y.size > 0 and np.isfinite(y).all()
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, "expected the decoder to complain about the damaged frames"
    assert all(line.startswith(f"{damaged}: libmpg123: ") for line in lines), lines
