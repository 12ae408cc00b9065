"""Uploads are untrusted (issue 14): a file is decoded as what it is, within limits, and no
message or JSON a user sees names a server path.

- Indirection files (an ffconcat list, an HLS or DASH playlist, an SDP description) disguised
  under every accepted extension are refused as "not a readable media file", and the file they
  point at is never read: ffmpeg as the app runs it opens only the accepted demuxers through the
  file protocol (`msa.features.media.input_args`). The same files opened by a plain ffmpeg
  command *do* read the target: the threat is real, and the test would catch its return.
- Files that would cost too much to decode (a decompression bomb: huge frames, absurd frame rates,
  many channels or streams, extreme sample rates) are refused from the probe, in well under a
  second, and a file longer than the endpoint's limit is never decoded past it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import CLIP, WAV, ffmpeg, make_media
from msa.app.service import InputError, Limits, Service, scrub_paths
from msa.features import FeatureError, FeatureExtractor, MediaLimits, decode_audio, ffmpeg_exe, probe
from msa.model.checkpoint import save_checkpoint
from msa.predict import Predictor
from msa.testing import tiny_model

EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".flv", ".wav", ".mp3", ".m4a", ".flac")


def indirections(folder: Path, target: Path) -> dict[str, str]:
    """Text files that make a permissive ffmpeg read ``target`` (or a URL) instead of themselves."""
    return {
        "ffconcat": f"ffconcat version 1.0\nfile {target.name}\n",
        "ffconcat-absolute": f"ffconcat version 1.0\nfile '{target}'\n",
        "hls": f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n{target.name}\n#EXT-X-ENDLIST\n",
        "dash": (
            '<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" '
            'mediaPresentationDuration="PT2S"><Period><AdaptationSet><Representation id="1" bandwidth="1">'
            f"<BaseURL>{target.name}</BaseURL></Representation></AdaptationSet></Period></MPD>\n"
        ),
        "sdp": "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 5004 RTP/AVP 0\n",
    }


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, tokenizer) -> Service:
    path = tmp_path_factory.mktemp("ckpt") / "text-only"
    save_checkpoint(path, tiny_model(acoustic_dim=5, visual_dim=20), tokenizer)
    return Service(Predictor(path, extractor=FeatureExtractor({"asr_model": "tiny.en"})), Limits(max_seconds=20.0))


def test_indirection_files_are_refused_under_every_extension(tmp_path: Path, service: Service) -> None:
    target = tmp_path / "someone_elses.wav"
    target.write_bytes(WAV.read_bytes())
    cases = indirections(tmp_path, target)
    # The threat: a plain ffmpeg decodes the listed file when handed the concat list.
    plain = tmp_path / "plain_concat.mp4"
    plain.write_text(cases["ffconcat"])
    opened = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(plain)], capture_output=True, text=True
    )
    assert "Input #0, concat" in opened.stderr and "Audio:" in opened.stderr
    for kind, text in cases.items():
        for ext in EXTENSIONS:
            f = tmp_path / f"{kind}{ext}"
            f.write_text(text)
            with pytest.raises(FeatureError, match=rf"{f.name}: not a readable media file") as info:
                probe(f)
            assert "expected video" in str(info.value)
            # Forced past the probe, the decoders still refuse it: nothing of the target comes out.
            assert _decodes_nothing(f), f"{kind}{ext}"
            with pytest.raises(InputError, match="not a readable media file"):
                service.validate(f)


def _decodes_nothing(f: Path) -> bool:
    """No audio out of ``f`` (an error or no samples), as the decoders are called after a probe."""
    try:
        return decode_audio(f).size == 0
    except FeatureError:
        return True


def test_a_real_clip_renamed_still_decodes_as_itself(tmp_path: Path) -> None:
    """The demuxer comes from the content, not the name: an mp4 called .mkv is read as mp4."""
    renamed = tmp_path / "clip.mkv"
    renamed.write_bytes(CLIP.read_bytes())
    info = probe(renamed)
    assert info.demuxer == "mov" and info.video_stream is not None and info.audio_stream is not None
    assert np.allclose(decode_audio(renamed, info.audio_stream, demuxer=info.demuxer), decode_audio(CLIP))


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """Small files whose decode would be huge, each with the limit it breaks."""
    out = tmp_path_factory.mktemp("bombs")
    lavfi = ["-f", "lavfi", "-i"]
    made = {
        "frames": (
            "color=black:s=6000x6000:d=0.1:r=10",
            ["-c:v", "libx264", "-preset", "ultrafast"],
            ".mp4",
            r"frames of 6000x6000",
        ),
        "wide": (
            "color=black:s=9000x16:d=0.1:r=10",
            ["-c:v", "libx264", "-preset", "ultrafast"],
            ".mp4",
            r"frames of 9000x16",
        ),
        "fps": (
            "color=red:s=64x64:d=1:r=1000",
            ["-c:v", "libx264", "-preset", "ultrafast"],
            ".mp4",
            r"1000 frames a second",
        ),
        "channels": ("sine=d=0.1", ["-ac", "16"], ".wav", r"16 audio channels"),
        "rate": ("sine=f=440:d=0.1:r=384000", [], ".wav", r"audio at 384000 Hz"),
    }
    files = {}
    for name, (source, codec, ext, why) in made.items():
        f = out / f"{name}{ext}"
        ffmpeg(*lavfi, source, *codec, str(f))
        files[name] = (f, why)
    streams = out / "streams.mkv"
    ffmpeg(*lavfi, "sine=d=0.2", *[a for _ in range(20) for a in ("-map", "0:a")], "-c:a", "flac", str(streams))
    files["streams"] = (streams, r"20 streams")
    return files


def test_decompression_bombs_are_refused_from_the_probe(
    bombs: dict[str, tuple[Path, str]], service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small files that would expand into huge frames or streams: the whole request path refuses
    them from the probe, and never starts decoding one (the decoders are replaced by spies)."""
    import msa.features.context
    import msa.features.extractor

    decoded: list[str] = []
    for module in (msa.features.extractor, msa.features.context):
        for name in ("decode_audio", "iter_frames"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, lambda *a, _n=name, **k: decoded.append(_n))
    for name, (f, why) in bombs.items():
        assert f.stat().st_size < 300_000, name  # small files...
        with pytest.raises(InputError, match=rf"{f.name}: too costly to decode: {why}") as info:
            service.answer(str(f))
        assert decoded == [], (name, decoded)  # ...refused without decoding them
        assert "ordinary size" in str(info.value)
    monkeypatch.undo()
    # The server keeps serving: the next ordinary request works.
    assert service.run(WAV, "it was really good").prediction.label7


def test_limits_are_settings(tmp_path: Path) -> None:
    tight = MediaLimits(max_pixels=100 * 100, max_side=100, max_fps=10, max_channels=1, max_sample_rate=16000)
    with pytest.raises(FeatureError, match=r"frames of 640x360.*30 frames a second.*2 audio channels.*44100 Hz"):
        probe(CLIP, tight)
    assert probe(CLIP).width == 640  # the defaults admit it


def test_decoding_stops_at_the_length_limit(tmp_path: Path) -> None:
    """A container's stated duration is not trusted: decoding itself stops at the limit."""
    long = tmp_path / "long.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=d=12", "-ar", "16000", str(long))
    audio = decode_audio(long, max_seconds=3.0)
    assert 3.0 <= audio.size / 16000 <= 4.0 + 1e-6
    fx = FeatureExtractor({"asr_model": "tiny.en"}, limits=MediaLimits(max_seconds=3.0))
    ex = fx.extract(long, transcript="a long tone", streams=())
    assert ex.duration == pytest.approx(12.0, abs=0.1)  # what the container says still counts for the check


def test_messages_and_json_name_no_server_path(tmp_path: Path, service: Service) -> None:
    folder = tmp_path / "deep" / "server" / "uploads"
    folder.mkdir(parents=True)
    fake = make_media("notes", folder, "my notes.mp4")
    with pytest.raises(InputError) as info:
        service.run(fake)
    assert (
        "my notes.mp4" in str(info.value) and str(tmp_path) not in str(info.value) and "/deep/" not in str(info.value)
    )
    clip = folder / "my clip.mp4"
    clip.write_bytes(CLIP.read_bytes())
    d = service.run(clip, "and he is one of my favorite actors ever", explain=True).to_dict()
    text = json.dumps(d)
    assert d["file"] == "my clip.mp4" and d["checkpoint"] == "text-only"
    assert str(tmp_path) not in text and "/tmp" not in text
    assert scrub_paths("error in /srv/app/checkpoints/x/model.safetensors (file:/tmp/a/b.mp4)") == (
        "error in model.safetensors (b.mp4)"
    )
