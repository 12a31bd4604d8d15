"""Upload handling shared by the routes and the CLI: bounded reads, type sniffing and audio decoding.

Refusals are domain errors (indexer.errors); service/app.py turns them into HTTP status codes.
"""

from __future__ import annotations

import io

import numpy as np
from fastapi import UploadFile

from indexer.errors import BadAudio, BadInput, TooLarge, UnsupportedType
from indexer.settings import Settings
from model.audio import SAMPLE_RATE

CHUNK = 1 << 20  # bytes read per step while enforcing the size cap
SILENCE_RMS = 1e-4  # a recording quieter than this carries nothing to identify
AUDIO_MAGIC = (b"RIFF", b"fLaC", b"OggS", b"ID3", b"FORM")  # wav, flac, ogg, mp3 (tagged), aiff


async def read_capped(upload: UploadFile, settings: Settings) -> bytes:
    """The whole upload, or TooLarge as soon as it passes the size limit."""
    limit = int(settings.max_upload_mb * 1024 * 1024)
    chunks, size = [], 0
    while chunk := await upload.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"upload larger than {settings.max_upload_mb:g} MB")
        chunks.append(chunk)
    data = b"".join(chunks)
    if not data:
        raise BadInput("empty file")
    return data


def _is_mpeg_frame(data: bytes) -> bool:
    return len(data) > 2 and data[0] == 0xFF and (data[1] & 0xE0) == 0xE0


def decode_audio(data: bytes, settings: Settings) -> np.ndarray:
    """Mono float32 at 22.05 kHz; UnsupportedType for non-audio, BadAudio for audio we refuse (length, silence)."""
    import soundfile as sf

    if not (data[:4] in AUDIO_MAGIC or data[:3] == b"ID3" or _is_mpeg_frame(data)):
        raise UnsupportedType("unsupported audio type: send wav, flac, ogg or mp3")
    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise UnsupportedType(f"could not read the audio: {exc}") from None
    duration = info.frames / info.samplerate if info.samplerate else 0.0
    if info.channels < 1 or info.channels > settings.max_audio_channels:
        raise BadAudio(f"{info.channels} channels; at most {settings.max_audio_channels} (downmix first)")
    if info.samplerate > settings.max_sample_rate:
        raise BadAudio(f"{info.samplerate} Hz; at most {settings.max_sample_rate} Hz")
    if duration > settings.max_audio_seconds:
        raise BadAudio(f"recording is {duration:.0f} s; the limit is {settings.max_audio_seconds:g} s")
    if duration < settings.min_audio_seconds:
        raise BadAudio(f"recording is {duration:.1f} s; at least {settings.min_audio_seconds:g} s needed")
    try:
        wave, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise BadAudio(f"could not decode the audio: {exc}") from None
    mono = wave.mean(axis=1)
    if sr != SAMPLE_RATE:
        import librosa

        mono = librosa.resample(mono, orig_sr=sr, target_sr=SAMPLE_RATE)
    if not np.isfinite(mono).all() or float(np.sqrt(np.mean(mono**2))) < SILENCE_RMS:
        raise BadAudio("the recording is silent")
    return mono.astype(np.float32)
