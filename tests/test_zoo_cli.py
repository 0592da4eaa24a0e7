"""`keras-pu zoo list|info` and `keras-pu demo` (download is tested with
the Hub server in test_zoo_hub.py)."""

import json

import numpy as np
from PIL import Image

from keras_pu.cli.main import main
from keras_pu.data import phantoms
from keras_pu import zoo
from keras_pu.zoo import registry as registry_lib


def test_zoo_list_shows_every_preset_and_its_status(untrained_registry, capsys):
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    for name in registry_lib.load_registry().names:
        assert name in out
    assert out.count("not trained yet") == len(registry_lib.load_registry().names)
    assert "research and education only" in out.lower()
    assert main(["zoo", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == registry_lib.load_registry().names
    assert main(["zoo", "list", "--with-weights", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_zoo_list_marks_the_recommended_presets(capsys):
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    for choice in zoo.recommended().values():
        assert f"{choice['preset']} *" in out
    assert "keras_pu.zoo.recommended()" in out


def test_zoo_info_and_its_errors(untrained_registry, capsys):
    assert main(["zoo", "info", "pu_unet_isic"]) == 0
    out = capsys.readouterr().out
    assert "stand-in for ISIC 2018 Task 1" in out
    assert "CC BY-NC 4.0" in out
    assert "(not published)" in out and "not trained yet" in out
    assert main(["zoo", "info", "pu_unet_isc"]) == 2
    assert "Did you mean 'pu_unet_isic'" in capsys.readouterr().err
    assert main(["zoo", "download", "pu_unet_busi", "--quiet"]) == 2
    assert "no trained weights yet" in capsys.readouterr().err


def test_zoo_info_shows_a_presets_gate_and_its_metrics(capsys):
    gated = [n for n, p in registry_lib.load_registry().presets.items() if p.postprocess]
    assert gated, "no preset has an image-level gate"
    for name in gated:
        assert main(["zoo", "info", name]) == 0
        out = capsys.readouterr().out
        gate = zoo.info(name)["postprocess"]["gate"]["min_peak_probability"]
        assert f"With its image-level gate {gate:.4f}" in out
        dice = zoo.info(name)["postprocess"]["test_metrics"]["values"]["dice"]
        assert f"{dice:.4f}" in out.split("With its image-level gate")[1]
    assert main(["zoo", "info", "pu_unet_kvasir"]) == 0
    assert "image-level gate" not in capsys.readouterr().out


def test_demo_without_any_trained_preset_fails_clearly(untrained_registry, tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err
    assert "No preset with trained weights" in err
    assert "pu_unet_isic (not trained)" in err
    assert "--preset" in err


def test_demo_segments_phantoms_with_the_available_preset(zoo_presets, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(registry_lib.REGISTRY_ENV, str(zoo_presets.registry_copy(tmp_path / "r.json")))
    monkeypatch.setenv(registry_lib.ZOO_DIR_ENV, str(zoo_presets.zoo_dir))
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    # tiny_pu is a Kvasir-SEG preset: it runs on the polyp phantom; no
    # preset covers the other two.
    assert "SYNTHETIC" in printed
    assert "no preset with weights for the skin_lesion phantom" in printed
    assert "tiny_pu on the synthetic polyp: Dice" in printed
    assert sorted(p.name for p in out.iterdir()) == [
        "polyp_image.png", "tiny_pu_polyp_mask.png", "tiny_pu_polyp_overlay.png",
    ]
    image, _ = phantoms.generate("polyp", size=32, seed=0)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "polyp_image.png")), image)
    logits = zoo_presets.models["tiny_pu"].predict(image[None] / np.float32(255), verbose=0)
    expected = (logits[0, ..., 0] > 0) * 255
    mask = np.asarray(Image.open(out / "tiny_pu_polyp_mask.png"))
    # Logits this close to 0 may flip between backends' rounding: allow a few.
    assert np.mean(mask != expected) < 0.01
    overlay = np.asarray(Image.open(out / "tiny_pu_polyp_overlay.png"))
    assert overlay.shape == (32 + 28, 32, 3)


def test_demo_with_a_folder_and_chosen_phantoms(zoo_presets, tmp_path, capsys):
    out = tmp_path / "demo"
    folder = str(zoo_presets.zoo_dir / "tiny_res")
    rc = main(["demo", "--preset", folder, "--phantoms", "skin_lesion,ultrasound_tumour",
               "--out", str(out), "--quiet"])
    assert rc == 0
    names = sorted(p.name for p in out.iterdir())
    assert len([n for n in names if n.endswith("_overlay.png")]) == 2
    assert main(["demo", "--preset", folder, "--phantoms", "tumor", "--out", str(out)]) == 2
    assert "Unknown phantom(s) ['tumor']" in capsys.readouterr().err
