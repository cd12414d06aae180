"""Audio-video clip I/O on PyAV: :class:`AVClip`, :func:`read_clip`, :func:`write_clip`.

Time convention.  Video time 0 is the presentation time of the first decoded video frame, and the
first audio sample of an :class:`AVClip` sits at video time 0: :func:`read_clip` pads or trims
the audio so this holds, whatever start times the container carries.

AV offset sign convention (used by every module of the project).  An offset ``d`` in seconds is
*positive when the audio lags the video*: an event seen at time ``t`` is heard at ``t + d``.
``omninft_bench.data.perturb.audio_shift(clip, +0.2)`` delays the audio by 0.2 s, and the
``av_offset`` metric estimates ``d``.

JavisBench pairing.  For ``sample_0001.mp4``, a sibling ``sample_0001.wav`` provides the audio and
wins over any audio track in the mp4 (the ``.wav`` is lossless and is what JavisBench scores).
"""

from __future__ import annotations

import dataclasses
import fractions
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

__all__ = ["AVClip", "MediaError", "as_written", "read_clip", "write_clip", "read_audio", "write_wav", "writer_settings"]

# libx264 options of every mp4 this package writes (besides crf).  mbtree=0: with x264's
# macroblock-tree rate control the same 32 x 32 frames encoded differently from call to call (11 of
# 15 repeats, 2026-12-03), which made the evaluation of one set of clips irreproducible; without
# it, 0 of 31 differed.
H264_OPTIONS = {"preset": "veryfast", "x264-params": "mbtree=0"}
DEFAULT_CRF = 18


class MediaError(Exception):
    """A media file that cannot be read or written; names the path and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass
class AVClip:
    """One clip: video frames, optional audio, prompt and free-form metadata.

    ``video``: ``[T, H, W, 3]``, uint8 or float32 in [0, 1].  ``audio``: float32 ``[C, N]`` in
    [-1, 1], or ``None`` when the clip has no audio track.
    """

    video: np.ndarray
    fps: float
    audio: np.ndarray | None = None
    sample_rate: int | None = None
    prompt: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.video.ndim != 4 or self.video.shape[-1] != 3:
            raise ValueError(f"video must be [T, H, W, 3], got shape {tuple(self.video.shape)}")
        if self.audio is not None:
            if self.audio.ndim == 1:
                self.audio = self.audio[None, :]
            if self.audio.ndim != 2:
                raise ValueError(f"audio must be [C, N], got shape {tuple(self.audio.shape)}")
            if not self.sample_rate:
                raise ValueError("audio given without sample_rate")

    @property
    def num_frames(self) -> int:
        return int(self.video.shape[0])

    @property
    def duration(self) -> float:
        """Video duration in seconds."""
        return self.num_frames / self.fps

    @property
    def has_audio(self) -> bool:
        return self.audio is not None

    def video_float(self) -> np.ndarray:
        if self.video.dtype == np.uint8:
            return self.video.astype(np.float32) / 255.0
        return self.video.astype(np.float32, copy=False)

    def video_uint8(self) -> np.ndarray:
        if self.video.dtype == np.uint8:
            return self.video
        return (np.clip(self.video, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)

    def audio_mono(self) -> np.ndarray | None:
        if self.audio is None:
            return None
        return self.audio.mean(axis=0).astype(np.float32, copy=False)

    def replace(self, **changes: Any) -> AVClip:
        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------- reading


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise MediaError(path, "file does not exist")
    if path.is_dir():
        raise MediaError(path, "is a directory, expected a media file")
    if path.stat().st_size == 0:
        raise MediaError(path, "file is empty")
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise MediaError(path, f"not a readable media file ({exc.__class__.__name__}: {exc})") from None


def _declared_duration(container: av.container.InputContainer) -> float | None:
    """Duration the container declares for its video (or, failing that, for the whole file)."""
    video = _stream_duration(container.streams.video[0])
    if video is not None:
        return video
    return container.duration / av.time_base if container.duration else None


def _decode_video(path: Path, container: av.container.InputContainer) -> tuple[np.ndarray, float, float]:
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate:
        raise MediaError(path, "video stream has no frame rate")
    frames: list[np.ndarray] = []
    start: float | None = None
    try:
        for frame in container.decode(stream):
            if start is None:
                start = float(frame.time) if frame.time is not None else 0.0
            frames.append(frame.to_ndarray(format="rgb24"))
    except av.error.FFmpegError as exc:
        if not frames:
            raise MediaError(path, f"video stream cannot be decoded ({exc})") from None
        # A truncated file still yields the frames before the damage; keep them.
    if not frames:
        raise MediaError(path, "video stream has no decodable frames (truncated?)")
    return np.stack(frames), float(rate), start or 0.0


def _decode_audio(
    path: Path, target_sample_rate: int | None
) -> tuple[np.ndarray, int, float] | None:
    """Decode the first audio stream to float32 ``[C, N]``; returns (audio, rate, start time)."""
    container = _open(path)
    with container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        channels = stream.codec_context.channels or 1
        layout = "mono" if channels == 1 else "stereo" if channels == 2 else None
        rate = target_sample_rate or stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="fltp", layout=layout or stream.layout, rate=rate)
        chunks: list[np.ndarray] = []
        start: float | None = None
        try:
            for frame in container.decode(stream):
                if start is None and frame.time is not None:
                    start = float(frame.time)
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
        except av.error.FFmpegError as exc:
            if not chunks:
                raise MediaError(path, f"audio stream cannot be decoded ({exc})") from None
        if not chunks:
            return np.zeros((channels, 0), np.float32), rate, 0.0
        audio = np.concatenate(chunks, axis=1).astype(np.float32)
        # AAC (and Opus) decoders emit whole frames: cut the tail padding back to the duration
        # the container declares for the stream.
        duration = _stream_duration(stream)
        if duration is not None:
            audio = audio[:, : int(round(duration * rate))]
        return np.clip(audio, -1.0, 1.0), rate, start or 0.0


def _stream_duration(stream: av.stream.Stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return None


def read_audio(path: str | Path, *, target_sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read the first audio stream of any file PyAV opens; float32 ``[C, N]`` and its rate."""
    path = Path(path)
    decoded = _decode_audio(path, target_sample_rate)
    if decoded is None:
        raise MediaError(path, "has no audio stream")
    audio, rate, _ = decoded
    return audio, rate


def _resample_frames(video: np.ndarray, fps: float, target_fps: float) -> np.ndarray:
    """Nearest-frame resampling in time (what ffmpeg's fps filter does)."""
    n_out = max(1, int(round(video.shape[0] * target_fps / fps)))
    idx = np.minimum(np.floor(np.arange(n_out) * fps / target_fps + 1e-6).astype(int), video.shape[0] - 1)
    return video[idx]


def read_clip(
    path: str | Path,
    *,
    audio_path: str | Path | None = None,
    target_fps: float | None = None,
    target_sample_rate: int | None = None,
) -> AVClip:
    """Read a clip from any container PyAV opens (mp4, mkv, webm, mov; H.264/VP9/AV1; AAC/Opus/PCM/FLAC).

    Audio comes from ``audio_path`` if given, else from a sibling ``.wav`` with the same stem
    (JavisBench convention: the wav wins), else from the file's own audio track; ``audio`` is
    ``None`` when there is none.  The first audio sample is placed at video time 0.  Raises
    :class:`MediaError` (naming the path) for missing, empty, truncated or non-media files.
    """
    path = Path(path)
    container = _open(path)
    with container:
        if not container.streams.video:
            raise MediaError(path, "has no video stream")
        video, fps, video_start = _decode_video(path, container)
        declared = _declared_duration(container)

    if audio_path is None:
        sibling = path.with_suffix(".wav")
        audio_path = sibling if path.suffix.lower() != ".wav" and sibling.exists() else path
    audio_path = Path(audio_path)
    decoded = _decode_audio(audio_path, target_sample_rate)
    audio: np.ndarray | None = None
    rate: int | None = None
    if decoded is not None:
        audio, rate, audio_start = decoded
        if audio_path == path:
            # Same container: align the first audio sample with the first video frame.
            lead = int(round((audio_start - video_start) * rate))
            if lead > 0:
                audio = np.pad(audio, ((0, 0), (lead, 0)))
            elif lead < 0:
                audio = audio[:, -lead:]

    if declared is not None:
        # A cut-off file often still decodes its first part; refuse it rather than score half a clip.
        decoded = video.shape[0] / fps
        if audio is not None and audio_path == path:
            decoded = max(decoded, audio.shape[1] / rate)
        if decoded < declared - max(2.0 / fps, 0.25):
            raise MediaError(path, f"truncated: decoded {decoded:.2f} s of the {declared:.2f} s it declares")

    if target_fps is not None and abs(target_fps - fps) > 1e-6:
        video = _resample_frames(video, fps, target_fps)
        fps = float(target_fps)
    return AVClip(video=video, fps=fps, audio=audio, sample_rate=rate, meta={"path": str(path)})


# --------------------------------------------------------------------------- writing


def _fps_fraction(fps: float) -> fractions.Fraction:
    return fractions.Fraction(fps).limit_denominator(1001)


def _audio_s16(audio: np.ndarray) -> np.ndarray:
    return (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype(np.int16)


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write float ``[C, N]`` audio as 16-bit PCM wav."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = np.atleast_2d(audio)
    layout = "mono" if audio.shape[0] == 1 else "stereo"
    try:
        with av.open(str(path), "w", format="wav") as out:
            stream = out.add_stream("pcm_s16le", rate=sample_rate, layout=layout)
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(_audio_s16(audio).T.reshape(1, -1)), format="s16", layout=layout
            )
            frame.sample_rate = sample_rate
            for packet in stream.encode(frame):
                out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(path, f"cannot write wav ({exc})") from None
    return path


def writer_settings(crf: int = DEFAULT_CRF) -> dict[str, Any]:
    """What decides the decoded pixels of a clip :func:`write_clip` writes: the H.264 options and
    the PyAV / FFmpeg library versions.  Folders of written clips are stamped with it, so a
    folder written with other settings is recognised and rewritten rather than silently reused."""
    return {
        "codec": "libx264",
        "pix_fmt": "yuv420p",
        "crf": crf,
        **H264_OPTIONS,
        "pyav": av.__version__,
        "libavcodec": ".".join(map(str, av.library_versions["libavcodec"])),
    }


def write_clip(path: str | Path, clip: AVClip, *, wav: bool = True, crf: int = DEFAULT_CRF) -> Path:
    """Write ``clip`` as an H.264 (yuv420p) + AAC mp4; with ``wav``, also ``path.with_suffix('.wav')``.

    Odd frame sizes are padded by one pixel (yuv420p needs even sizes).  The mp4 plays in
    browsers; the wav keeps the exact audio (JavisBench pairing).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = clip.video_uint8()
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    rate = _fps_fraction(clip.fps)
    try:
        with av.open(str(path), "w", format="mp4") as out:
            vstream = out.add_stream("libx264", rate=rate)
            vstream.width, vstream.height = frames.shape[2], frames.shape[1]
            vstream.pix_fmt = "yuv420p"
            vstream.options = {"crf": str(crf), **H264_OPTIONS}
            astream = None
            if clip.audio is not None:
                layout = "mono" if clip.audio.shape[0] == 1 else "stereo"
                astream = out.add_stream("aac", rate=clip.sample_rate, layout=layout)
                astream.bit_rate = 128_000
            for frame in frames:
                vframe = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                for packet in vstream.encode(vframe):
                    out.mux(packet)
            for packet in vstream.encode(None):
                out.mux(packet)
            if astream is not None:
                aframe = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(clip.audio.astype(np.float32)),
                    format="fltp",
                    layout="mono" if clip.audio.shape[0] == 1 else "stereo",
                )
                aframe.sample_rate = clip.sample_rate
                aframe.pts = 0
                aframe.time_base = fractions.Fraction(1, clip.sample_rate)
                for packet in astream.encode(aframe):
                    out.mux(packet)
                for packet in astream.encode(None):
                    out.mux(packet)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(path, f"cannot write mp4 ({exc})") from None
    if wav and clip.audio is not None:
        write_wav(path.with_suffix(".wav"), clip.audio, clip.sample_rate)
    return path


def as_written(clips: list[AVClip], *, crf: int = DEFAULT_CRF) -> list[AVClip]:
    """``clips`` as an evaluation of their written files reads them: each goes through
    :func:`write_clip` (H.264 4:2:0 mp4 + wav) and :func:`read_clip`, keeping its prompt and meta.

    A reward that scores generated clips in memory sees pixels the evaluation never does: at
    32 x 32 the codec's chroma subsampling moves the frames enough that, on rollouts of the base
    model, video_realism's within-group ranking on the raw frames correlates only +0.86 with the
    ranking on the decoded ones (javis_score +0.91, clip_score +0.95; the audio rewards 1.00, since
    the wav is lossless but for 16-bit rounding; a /tmp script over 4 batches of 4 x 8 rollouts).
    About 45 ms a clip on one CPU thread.  The trainer uses it with ``train.score_written``.
    """
    out = []
    with tempfile.TemporaryDirectory(prefix="omninft-as-written-") as tmp:
        for i, clip in enumerate(clips):
            read = read_clip(write_clip(Path(tmp) / f"clip_{i:04d}.mp4", clip, crf=crf))
            out.append(dataclasses.replace(read, prompt=clip.prompt, meta=dict(clip.meta)))
    return out
