"""Weight sources, tested offline: a checkpoint we write ourselves, bad paths, corrupt files, the Hub offline."""

import numpy as np
import pytest

from rfdetr_demo.models.loading import ModelLoadError, ModelSpec, load_rfdetr, parse_hub_reference, resolve_precision

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def five_keypoint_checkpoint(tmp_path_factory):
    """A fine-tune-shaped checkpoint with K=5 keypoints, saved the way rfdetr stores weights."""
    import torch
    from rfdetr import RFDETRKeypointPreview

    model = RFDETRKeypointPreview(pretrain_weights=None, num_keypoints_per_class=[5], num_classes=2, resolution=288)
    path = tmp_path_factory.mktemp("ckpt") / "hand5.pth"
    torch.save({"model": model.model.model.state_dict(), "args": model.model.args}, path)
    return path


def test_local_checkpoint_with_five_keypoints_uses_generic_names(five_keypoint_checkpoint):
    # engine="torch": this test is about the weights; the OpenVINO engine has its own tests in test_speed_backend
    spec = ModelSpec(checkpoint=str(five_keypoint_checkpoint), device="cpu", engine="torch")
    predictor, schema, info = load_rfdetr(spec)
    assert info.num_keypoints == 5 and schema.names == ("kp_0", "kp_1", "kp_2", "kp_3", "kp_4")
    assert schema.edges == () and not info.random_weights and info.name == "hand5.pth"
    out = predictor.predict([np.zeros((64, 96, 3), np.uint8)], threshold=0.0, resolution=192)
    assert out[0].xy.shape[1:] == (5, 2)


def test_schema_file_names_the_keypoints(five_keypoint_checkpoint, tmp_path):
    schema_path = tmp_path / "hand.json"
    schema_path.write_text('{"keypoints": ["wrist", "thumb", "index", "middle", "ring"], "skeleton": [[0, 1]]}')
    _, schema, _ = load_rfdetr(
        ModelSpec(checkpoint=str(five_keypoint_checkpoint), device="cpu", schema_path=str(schema_path), engine="torch")
    )
    assert schema.names[0] == "wrist" and schema.edges == ((0, 1),)


def test_schema_with_wrong_k_is_refused(five_keypoint_checkpoint, coco_json):
    with pytest.raises(ModelLoadError, match="names 17 keypoints but the checkpoint predicts 5"):
        spec = ModelSpec(checkpoint=str(five_keypoint_checkpoint), schema_path=str(coco_json), engine="torch")
        load_rfdetr(spec)


def test_missing_and_corrupt_checkpoints_give_advice(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        load_rfdetr(ModelSpec(checkpoint=str(tmp_path / "nope.pth")))
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"definitely not a torch checkpoint")
    with pytest.raises(ModelLoadError, match="complete RF-DETR keypoint checkpoint"):
        load_rfdetr(ModelSpec(checkpoint=str(bad), device="cpu", engine="torch"))


def test_hub_download_failure_is_explained(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelLoadError, match="Hugging Face Hub"):
        load_rfdetr(ModelSpec(hub_repo="someone/keypoints", hub_filename="model.pth"))
    with pytest.raises(ModelLoadError, match="without a file name"):
        load_rfdetr(ModelSpec(hub_repo="someone/keypoints"))


def test_hub_references_and_precision():
    assert parse_hub_reference("hf://me/repo/weights/best.pth") == ("me/repo", "weights/best.pth")
    assert parse_hub_reference("me/repo:best.pth") == ("me/repo", "best.pth")
    assert parse_hub_reference("/models/best.pth") is None
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("auto", "cuda") == "fp16"
    assert resolve_precision("fp16", "cpu") == "fp32"


def test_pretrained_download_failure_says_what_to_do(monkeypatch, tmp_path):
    """Offline (the test suite refuses to resolve any non-loopback host) the message names the fixes."""
    monkeypatch.setenv("RF_HOME", str(tmp_path))  # an empty weights cache, so rfdetr must try to download
    with pytest.raises(ModelLoadError) as err:
        load_rfdetr(ModelSpec(device="cpu"))
    message = str(err.value)
    assert "network disabled in tests" in message and "--checkpoint" in message and "--random-weights" in message
    # The page gets one sentence and the advice; the raw connection error is kept as the folded-away detail.
    assert "could not be downloaded" in err.value.summary and "network disabled in tests" not in err.value.summary
    assert "--checkpoint" in err.value.advice and "network disabled in tests" in err.value.detail
