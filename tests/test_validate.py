"""The metric-validity sweep: expectation rules, pass rules, and the CLI end to end on a small n."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from omninft_bench.data import perturb
from omninft_bench.metrics import get_spec
from omninft_bench.validate import (
    DEFAULT_REWARD_METRICS,
    expected_direction,
    judge,
    main,
)


def test_expectations_follow_the_issue_rules():
    assert expected_direction(get_spec("javis_score"), "audio_shift")[0] == "worse"
    assert expected_direction(get_spec("av_offset"), "audio_shift")[0] == "worse"
    assert expected_direction(get_spec("temporal_flickering"), "audio_shift")[0] == "none"
    assert expected_direction(get_spec("clip_score"), "prompt_swap")[0] == "worse"
    assert expected_direction(get_spec("clap_score"), "prompt_swap")[0] == "worse"
    assert expected_direction(get_spec("av_score"), "audio_swap")[0] == "worse"
    assert expected_direction(get_spec("audio_realism"), "audio_noise")[0] == "worse"
    assert expected_direction(get_spec("video_realism"), "video_blur")[0] == "worse"
    assert expected_direction(get_spec("fad"), "video_blur")[0] == "none"  # reads no video
    assert expected_direction(get_spec("clip_score"), "audio_noise")[0] == "none"  # reads no audio
    assert expected_direction(get_spec("audio_realism"), "audio_shift")[0] == "none"  # still natural sound
    assert expected_direction(get_spec("clap_score"), "audio_swap")[0] == "worse"  # the sound is replaced
    assert expected_direction(get_spec("video_realism"), "video_flicker")[0] == "worse"
    # documented exceptions: VBench's temporal metrics reward a still video
    assert expected_direction(get_spec("temporal_flickering"), "video_freeze")[0] == "better"


def test_every_pair_has_an_expectation():
    from omninft_bench.metrics import list_metrics

    for spec in list_metrics():
        for name in perturb.PERTURBATIONS:
            expected, reason = expected_direction(spec, name)
            assert expected in ("worse", "better", "none") and reason


def test_pass_rules():
    rules = {"min_spearman": 0.8, "none_tolerance": 0.5}
    assert judge("worse", 0.9, [0.2, 1.0, 3.0], **rules)
    assert not judge("worse", 0.7, [0.2, 0.4, 0.45], **rules)  # weak trend, small move
    assert judge("worse", 0.7, [5.0, 4.9, 5.1], **rules)  # saturates at the mildest level
    assert not judge("worse", 0.7, [-1.0, 4.9, 5.1], **rules)  # materially better somewhere
    assert not judge("worse", math.nan, [0.0, 0.0], **rules)  # flat
    assert judge("better", -1.0, [-1.0, -2.0], **rules)
    assert judge("none", math.nan, [0.0, 0.0], **rules)  # flat
    assert judge("none", 1.0, [0.05, 0.1], **rules)  # consistent but tiny
    assert judge("none", 0.2, [5.0, -5.0], **rules)  # large but erratic
    assert not judge("none", 1.0, [1.0, 2.0], **rules)


@pytest.mark.filterwarnings("ignore:frechet_distance")  # 4 clips < 128 dims, on purpose
def test_cli_small_run(tmp_path):
    out = tmp_path / "validity"
    names = ["javis_score", "temporal_flickering", "clap_score", "fad"]
    result = main(
        [
            "n=4",
            "n_reference=8",
            f"metrics=[{','.join(names)}]",
            "perturbations=[audio_shift,prompt_swap,video_blur]",
            "severities={audio_shift:[0.5,1.0],video_blur:[2.0]}",
            f"out={out}",
            "track=false",
            "progress=false",
        ]
    )
    validity = json.loads((out / "validity.json").read_text())
    assert set(validity) == set(names)
    for row in validity.values():
        assert set(row) == {"audio_shift", "prompt_swap", "video_blur"}
        for cell in row.values():
            assert cell["expected"] in ("worse", "better", "none")
            assert isinstance(cell["pass"], bool)
            assert cell["spearman"] is None or -1.0 <= cell["spearman"] <= 1.0
    # Blind by construction: the video is untouched by an audio shift.
    assert validity["temporal_flickering"]["audio_shift"] == validity["temporal_flickering"]["audio_shift"] | {
        "expected": "none",
        "pass": True,
        "blind_by_construction": True,
    }
    assert validity["javis_score"]["audio_shift"]["expected"] == "worse"
    assert result["meta"]["backends"]["clap_score"] == "synthbind"
    markdown = (out / "validity.md").read_text()
    assert "| javis_score" in markdown or "**javis_score**" in markdown
    assert "Ground truth" not in markdown  # av_offset was not among the metrics
    details = json.loads((out / "ground_truth.json").read_text())
    assert details["meta"]["severities"]["audio_shift"] == [0.5, 1.0]
    assert set(DEFAULT_REWARD_METRICS) >= {"javis_score", "clap_score"}
    # Per-sample metrics get a content-bias row (fad is a distribution metric: none).
    assert set(details["meta"]["content_bias"]) == {"javis_score", "temporal_flickering", "clap_score"}
    assert "## Content bias on clean clips" in markdown


def test_cli_rejects_unknown_names(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["n=4", "perturbations=[audio_shfit]", f"out={tmp_path}", "track=false", "progress=false"])
    assert exc.value.code == 2
    assert "audio_shfit" in capsys.readouterr().err


def test_content_bias_signs_and_gaps():
    from omninft_bench.media import AVClip
    from omninft_bench.validate import content_bias

    def clip(objects, sounds):
        gt = {"objects": [{}] * objects, "audio_events": [{}] * sounds, "visual_events": [{}, {}]}
        return AVClip(video=np.zeros((2, 4, 4, 3), np.uint8), fps=8.0, meta={"gt": gt})

    clips = [clip(1, 3), clip(2, 1), clip(3, 2), clip(4, 0)]
    per_clip = {
        "video_realism": np.array([0.1, 0.2, 0.4, 0.8]),  # lower is better: rises with objects
        "clip_score": np.array([0.1, 0.2, 0.4, 0.8]),  # higher is better: same values, opposite reading
        "av_offset": np.array([1.0, np.nan, 1.0, 1.0]),  # constant where scorable
    }
    specs = {name: get_spec(name) for name in per_clip}
    bias = content_bias(per_clip, clips, specs)
    assert bias["video_realism"]["objects"] == pytest.approx(1.0)  # richer scores worse
    assert bias["clip_score"]["objects"] == pytest.approx(-1.0)  # richer scores better
    # sounds 3, 1, 2, 0 against values rising: Spearman of ranks (4,2,3,1) vs (1,2,3,4) = -0.8
    assert bias["video_realism"]["sounds"] == pytest.approx(-0.8)
    assert bias["video_realism"]["visual events"] is None  # the count does not vary
    assert bias["av_offset"] == {"objects": None, "sounds": None, "visual events": None}
