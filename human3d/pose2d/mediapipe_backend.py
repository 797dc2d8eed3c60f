"""MediaPipe BlazePose as the shipped 2D keypoint detector for real photos, and its mapping to COCO-17 / BODY_25.

Why mediapipe: it is the one registry package whose wheel carries a modern pose network's weights
(``pose_detection.tflite`` + ``pose_landmark_full.tflite``, in mediapipe 0.10.14 - 0.10.21; 0.10.30+ dropped the
``solutions`` API and ship no models). Only ``model_complexity=1`` runs offline (0 and 2 download their models).
It finds **one person per call** (the most prominent one); :mod:`human3d.pose2d.detect` handles several people.

Install (the wheel declares jax, opencv-contrib-python and sounddevice, none of which pose needs, and
opencv-contrib would replace our opencv-python-headless)::

    pip install -e ".[detect]"             # protobuf<5, absl-py, flatbuffers, matplotlib (its solutions import it)
    pip install --no-deps mediapipe==0.10.21

(``make setup`` does both.) It runs with numpy 2 although its metadata says ``numpy<2``.

Mapping (BlazePose 33 landmark index -> target keypoint; checked by ``tests/pose2d/test_detect.py``):

============== ================= ====================================================================
target         BlazePose index   note
============== ================= ====================================================================
nose           0 nose
left/right eye 2 / 5             BlazePose's eye *centres* (1, 3 / 4, 6 are inner/outer corners)
left/right ear 7 / 8
shoulders      11 / 12           left / right
elbows         13 / 14
wrists         15 / 16
hips           23 / 24
knees          25 / 26
ankles         27 / 28
heels          29 / 30           BODY_25 only
big toes       31 / 32           BODY_25 only (BlazePose's ``foot_index``: the tip of the foot)
small toes     --                BODY_25 only: no BlazePose counterpart, written with confidence 0
neck           mid(11, 12)       BODY_25 only: the shoulders' midpoint, confidence the smaller of the two
mid_hip        mid(23, 24)       BODY_25 only: the hips' midpoint (OpenPose's convention)
============== ================= ====================================================================

Coordinates: BlazePose's normalised ``x * W, y * H`` are continuous pixel coordinates (the convention of
:mod:`human3d.geometry.cameras`); confidence is the landmark's ``visibility`` in [0, 1].
"""

from __future__ import annotations

import numpy as np

from human3d.body.skeletons import MIDPOINTS, skeleton_names
from human3d.errors import InvalidInputError
from human3d.io_utils import filtered_stderr

__all__ = ["BLAZEPOSE33", "MEDIAPIPE_VERSIONS", "mediapipe_status", "blazepose_to", "BlazePose"]

BLAZEPOSE33 = [
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_pinky", "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
]  # fmt: skip

# target keypoint name -> BlazePose name, where the names differ (the rest share names with COCO / BODY_25)
_RENAMED = {"left_big_toe": "left_foot_index", "right_big_toe": "right_foot_index"}
MEDIAPIPE_VERSIONS = ("0.10.14", "0.10.21")  # the range whose wheel ships BlazePose and the solutions API
# native log lines mediapipe / TFLite write to stderr at start-up and on the first image
_NATIVE_NOISE = ("XNNPACK delegate", "absl::InitializeLog", "inference_feedback_manager", "landmark_projection_calculator",
                 "gl_context", "All log messages before")  # fmt: skip


def mediapipe_status() -> tuple[bool, str]:
    """``(True, version)`` if mediapipe's BlazePose can run here, else ``(False, why)`` (with the install line)."""
    hint = 'install it with: pip install -e ".[detect]" && pip install --no-deps mediapipe==0.10.21'
    try:
        import mediapipe
        from mediapipe.python.solutions import pose  # noqa: F401
    except ImportError as e:
        return False, f"mediapipe's BlazePose is not available ({e}); {hint}"
    return True, str(getattr(mediapipe, "__version__", "?"))


def blazepose_to(landmarks: np.ndarray, skeleton: str = "coco17") -> np.ndarray:
    """Map BlazePose landmarks ``[..., 33, 3]`` (u, v, confidence) to ``skeleton`` ("coco17" or "body25").

    Keypoints without a counterpart get zeros (confidence 0); midpoints (neck, mid_hip) average their two ends and
    take the smaller confidence.
    """
    lm = np.asarray(landmarks, dtype=np.float32)
    if lm.shape[-2:] != (33, 3):
        raise InvalidInputError(f"landmarks: expected shape [..., 33, 3] (u, v, confidence), got {lm.shape}")
    if skeleton not in ("coco17", "body25"):
        raise InvalidInputError(f"skeleton: expected 'coco17' or 'body25', got {skeleton!r}")
    names = skeleton_names(skeleton)
    out = np.zeros(lm.shape[:-2] + (len(names), 3), dtype=np.float32)
    for j, name in enumerate(names):
        src = _RENAMED.get(name, name)
        if src in BLAZEPOSE33:
            out[..., j, :] = lm[..., BLAZEPOSE33.index(src), :]
        elif name in MIDPOINTS:
            a, b = (lm[..., BLAZEPOSE33.index(n), :] for n in MIDPOINTS[name])
            out[..., j, :2] = 0.5 * (a[..., :2] + b[..., :2])
            out[..., j, 2] = np.minimum(a[..., 2], b[..., 2])
    return out


class BlazePose:
    """One BlazePose graph (``static_image_mode=True, model_complexity=1``), reused across images.

    ``detect(rgb)`` returns the most prominent person's landmarks ``[33, 3]`` (u, v, visibility) in the image's
    continuous pixel coordinates, or None when no person is found. Use as a context manager or call ``close()``.
    """

    def __init__(self, min_detection_confidence: float = 0.5):
        ok, why = mediapipe_status()
        if not ok:
            raise InvalidInputError(f"backend 'mediapipe': {why}")
        from mediapipe.python.solutions import pose

        with filtered_stderr(drop=_NATIVE_NOISE):
            self._pose = pose.Pose(static_image_mode=True, model_complexity=1, enable_segmentation=False,
                                   min_detection_confidence=min_detection_confidence)  # fmt: skip
            # the graph opens its calculators (and TFLite logs its delegates) on worker threads: one warm-up frame
            # waits for them inside the filter
            self._pose.process(np.zeros((64, 64, 3), dtype=np.uint8))

    def detect(self, rgb: np.ndarray) -> np.ndarray | None:
        if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise InvalidInputError(f"image: expected a uint8 RGB array [H, W, 3], got {getattr(rgb, 'shape', rgb)}")
        H, W = rgb.shape[:2]
        with filtered_stderr(drop=_NATIVE_NOISE):
            res = self._pose.process(np.ascontiguousarray(rgb))
        if res.pose_landmarks is None:
            return None
        lm = np.array([[p.x * W, p.y * H, p.visibility] for p in res.pose_landmarks.landmark], dtype=np.float32)
        lm[:, 2] = np.clip(lm[:, 2], 0.0, 1.0)
        return lm

    def close(self) -> None:
        if getattr(self, "_pose", None) is not None:
            with filtered_stderr(drop=_NATIVE_NOISE):
                self._pose.close()
            self._pose = None

    def __enter__(self) -> BlazePose:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
