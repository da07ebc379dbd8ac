"""Errors: the visitor's mistakes are shown as they are and logged in one line; our faults are logged with their
traceback under a reference the page shows, and never leak their text."""

from __future__ import annotations

import logging
import re

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from rfdetr_demo.errors import UserError
from rfdetr_demo.image.decode import ImageLoadError
from rfdetr_demo.models.service import ModelService, ModelUnavailable
from rfdetr_demo.results.schema import KeypointSchema
from rfdetr_demo.ui.controls import parse_resolution
from rfdetr_demo.ui.handlers import Refused, UiContext, in_place, page_error, user_errors
from rfdetr_demo.ui.image_tab import empty_outputs, predict_image, predict_or_clear
from rfdetr_demo.ui.webcam_tab import on_frame
from tests.conftest import replay_info

REF = re.compile(r"reference ([0-9a-f]{8})")


class DroppingPredictor:
    """A model wrapper with a bug: it loses the batch's outputs (the service's ``zip(strict=True)`` then fails)."""

    def predict(self, images, threshold, resolution):
        return []


@pytest.fixture()
def broken_ctx() -> UiContext:
    service = ModelService(lambda: (DroppingPredictor(), KeypointSchema.coco(), replay_info(96)))
    service.start()
    service.wait(30)
    return UiContext(service)


@pytest.fixture()
def photo(tmp_path) -> str:
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.full((48, 64, 3), 128, np.uint8)).save(path)
    return str(path)


def _records(caplog, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == level and r.name.startswith("rfdetr_demo")]


def test_an_internal_error_is_logged_with_traceback_and_shown_as_one_sentence_with_its_reference(
    broken_ctx, photo, caplog
):
    caplog.set_level(logging.INFO)
    with pytest.raises(gr.Error) as info:
        predict_image(broken_ctx, photo, resolution=96)
    shown = info.value.message
    assert "zip" not in shown and "argument" not in shown, "the exception text must not reach the page"
    assert info.value.title == "Server error" and not info.value.print_exception
    ref = REF.search(shown).group(1)
    errors = _records(caplog, logging.ERROR)
    assert len(errors) == 1 and ref in errors[0].getMessage() and "predict_image" in errors[0].getMessage()
    exc_type, exc, _tb = errors[0].exc_info
    assert exc_type is ValueError and "zip()" in str(exc)  # the real cause, with its traceback, in the log
    assert "Traceback" in caplog.text and "zip()" in caplog.text
    with pytest.raises(gr.Error) as again:
        predict_image(broken_ctx, photo, resolution=96)
    assert REF.search(again.value.message).group(1) != ref, "each failure gets its own reference"


def test_a_visitor_mistake_is_shown_as_is_and_logs_one_line_without_traceback(broken_ctx, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    fake = tmp_path / "notes.png"
    fake.write_text("this is not an image")
    with pytest.raises(gr.Error) as info:
        predict_image(broken_ctx, str(fake), resolution=96)
    assert info.value.title == "Cannot process this input" and not info.value.print_exception
    assert "notes.png" in info.value.message and "image" in info.value.message
    assert not REF.search(info.value.message)
    ours = [r for r in caplog.records if r.name.startswith("rfdetr_demo")]
    assert len(ours) == 1 and ours[0].levelno == logging.INFO and ours[0].exc_info is None
    assert "notes.png" in ours[0].getMessage()
    assert "Traceback" not in caplog.text


def test_a_bad_option_is_a_user_error_with_what_to_change(broken_ctx, photo):
    with pytest.raises(UserError, match=r"multiple of 24, got '100\.5'"):
        parse_resolution("100.5")
    with pytest.raises(gr.Error) as info:
        predict_image(broken_ctx, photo, resolution=100)
    assert info.value.title == "Cannot process this input" and "multiple of 24" in info.value.message
    with pytest.raises(gr.Error) as info:
        predict_image(broken_ctx, photo, threshold=1.5, resolution=96)
    assert "threshold must be within [0, 1], got 1.5" in info.value.message


def test_page_error_sorts_exceptions(caplog):
    caplog.set_level(logging.INFO)
    assert page_error(ImageLoadError("Could not read x.png as an image."), "t").title == "Cannot process this input"
    model = page_error(ModelUnavailable("The model is still loading; please try again in a moment."), "t")
    assert model.title == "Model not ready" and "still loading" in model.message
    ours = gr.Error("Please upload a file first.", title="No image")
    assert page_error(ours, "t") is ours and ours.print_exception is False  # Gradio would print its traceback
    assert not _records(caplog, logging.ERROR)
    internal = page_error(KeyError("/srv/secret/path"), "t")
    assert "/srv/secret" not in internal.message and REF.search(internal.message)
    assert len(_records(caplog, logging.ERROR)) == 1


def test_user_errors_keeps_the_handlers_name_and_result():
    @user_errors
    def handler(x: int) -> int:
        """Doc."""
        return x * 2

    assert handler(21) == 42 and handler.__name__ == "handler" and handler.__doc__ == "Doc."


def test_a_webcam_frame_failure_keeps_the_stream_and_hides_internals(broken_ctx, caplog):
    frame = np.full((48, 64, 3), 100, np.uint8)
    _image, readout, handler = on_frame(
        broken_ctx, frame, 0.5, 0.3, 96, ["Combined"], False, "off", model=None, handler=None
    )
    assert handler is not None  # the stream goes on with the same handler
    assert "zip" not in readout and REF.search(readout), readout
    assert len(_records(caplog, logging.ERROR)) == 1


def test_page_events_show_the_message_in_place_once(broken_ctx, tmp_path, caplog):
    """The page's image events answer a failure with cleared outputs and the reason in the summary (no toast);
    Gradio's duplicate ``change`` for the same file repeats it without logging again."""
    caplog.set_level(logging.INFO)
    fake = tmp_path / "notes.png"
    fake.write_text("this is not an image")
    page_change = in_place(predict_or_clear, empty_outputs, "image")
    out = page_change(broken_ctx, str(fake), 0.5, 0.3, 96, ["Combined"], model=None, kept=None)
    views, persons, files, summary, state = (out[k] for k in ("gallery", "persons", "files", "summary", "state"))
    assert views == [] and persons is None and files is None
    assert summary.startswith("⚠️ **Cannot process this input.**") and summary.count("notes.png") == 1
    assert isinstance(state, Refused) and state.input == str(fake)
    again = page_change(broken_ctx, str(fake), 0.5, 0.3, 96, ["Combined"], model=None, kept=state)
    assert again == out
    assert len([r for r in caplog.records if r.name.startswith("rfdetr_demo")]) == 1


def test_no_model_is_said_in_place_without_a_traceback(tmp_path, photo, caplog):
    caplog.set_level(logging.INFO)

    def offline():
        raise OSError("HTTPSConnectionPool(host='storage.googleapis.com'): Max retries exceeded")

    service = ModelService(offline)
    service.start()
    with pytest.raises(ModelUnavailable):
        service.wait(30)
    caplog.clear()  # the failed load itself is logged once, with its traceback, by the service
    out = in_place(predict_or_clear, empty_outputs, "image")(
        UiContext(service), photo, 0.5, 0.3, 96, ["Combined"], model=None, kept=None
    )
    assert out["summary"].startswith("⚠️ **Model not ready.** The model could not be loaded.")
    ours = [r for r in caplog.records if r.name.startswith("rfdetr_demo")]
    assert len(ours) == 1 and ours[0].levelno == logging.INFO and ours[0].exc_info is None
    assert out["state"] is None, "no Refused state: once the model is ready, the same image runs"


# What a visitor must never read: a server path, an errno, an exception class name or a traceback.
LEAK = re.compile(r"/(tmp|work|root|home|usr|var)/|\\\\|Errno|\b[A-Z]\w*(Error|Exception)\b|Traceback|File \"")


def _bad_files(tmp_path, coco_image_paths) -> dict[str, object]:
    text = tmp_path / "notimage.jpg"
    text.write_text("this is not an image")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(coco_image_paths[785].read_bytes()[:2000])
    video = tmp_path / "notvideo.mp4"
    video.write_text("this is not a video")
    binary = tmp_path / "ann.json"
    binary.write_bytes(b"\xff\xd8 a JPEG renamed")
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [')
    folder = tmp_path / "folder.json"
    folder.mkdir()
    return {"image": (text, truncated), "video": (video,), "annotations": (binary, broken, folder)}


def test_no_message_for_a_bad_file_shows_internals(replay_service, coco_json, coco_image_paths, tmp_path, caplog):
    """Bad image, video, annotation and prediction files: each message names the file and what to do, never the
    server's path, an errno or an exception class; what the library said is in the log line instead."""
    from rfdetr_demo.ui.evaluate_tab import evaluate_predictions
    from rfdetr_demo.ui.video_tab import predict_video

    caplog.set_level(logging.INFO)
    ctx = UiContext(replay_service)
    bad = _bad_files(tmp_path, coco_image_paths)
    page_image = in_place(predict_or_clear, empty_outputs, "image")
    messages = [
        page_image(ctx, str(p), 0.5, 0.3, 96, ["Combined"], model=None, kept=None)["summary"] for p in bad["image"]
    ]
    for call in (
        *(lambda p=p: predict_video(ctx, str(p), resolution=96, progress=lambda *a, **k: None) for p in bad["video"]),
        *(
            lambda p=p: evaluate_predictions(ctx, str(p), None, [str(coco_json)], progress=lambda *a, **k: None)
            for p in bad["annotations"]
        ),
        *(  # prediction files: not JSON, not a list, a folder
            lambda p=p: evaluate_predictions(ctx, str(coco_json), None, [str(p)], progress=lambda *a, **k: None)
            for p in bad["annotations"]
        ),
    ):
        with pytest.raises(gr.Error) as raised:
            call()
        messages.append(raised.value.message)
    assert len(messages) == 9
    for message in messages:
        assert message and not LEAK.search(message), message
        assert str(tmp_path) not in message
    said = " ".join(r.getMessage() for r in caplog.records if r.name.startswith("rfdetr_demo"))
    assert "InvalidDataError" in said, "the decoder's own words are logged (with the cause), not shown"
