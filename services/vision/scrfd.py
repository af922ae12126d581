"""The numeric parts of the insightface engine: SCRFD output decoding, non-maximum suppression
and the similarity transform that aligns a face to ArcFace's template. Pure numpy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float32]

STRIDES = (8, 16, 32)
"""SCRFD's feature strides: its nine outputs are scores, boxes and keypoints for each."""


def decode_scrfd(
    outputs: Sequence[Floats], height: int, width: int, threshold: float
) -> tuple[Floats, Floats, Floats]:
    """SCRFD's nine outputs as boxes, scores and keypoints above ``threshold``, in input px."""
    found_boxes, found_scores, found_points = [], [], []
    for level, stride in enumerate(STRIDES):
        rows, cols = height // stride, width // stride
        scores = np.asarray(outputs[level], dtype=np.float32).reshape(-1)
        distances = np.asarray(outputs[level + 3], dtype=np.float32).reshape(-1, 4) * stride
        offsets = np.asarray(outputs[level + 6], dtype=np.float32).reshape(-1, 5, 2) * stride
        anchors, remainder = divmod(len(scores), rows * cols)
        if remainder or not anchors or not len(distances) == len(scores) == len(offsets):
            raise RuntimeError(
                f"SCRFD stride {stride} gave {len(scores)} scores for a {cols}x{rows} grid"
            )
        ys, xs = np.mgrid[:rows, :cols]
        centres = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
        centres = np.repeat(centres, anchors, axis=0)  # point-major: a point's anchors adjoin
        chosen = scores >= threshold
        centres = centres[chosen]
        distances = distances[chosen]
        found_scores.append(scores[chosen])
        found_boxes.append(
            np.concatenate([centres - distances[:, :2], centres + distances[:, 2:]], axis=1)
        )
        found_points.append(centres[:, np.newaxis, :] + offsets[chosen])
    return (
        np.concatenate(found_boxes).astype(np.float32),
        np.concatenate(found_scores).astype(np.float32),
        np.concatenate(found_points).astype(np.float32),
    )


def nms(boxes: Floats, scores: Floats, overlap: float) -> npt.NDArray[np.intp]:
    """Indices of the boxes kept by greedy non-maximum suppression, highest score first.

    A box is dropped when its intersection over union with a kept, higher-scoring box exceeds
    ``overlap``. Ties in score keep the earlier box, so the result is deterministic.
    """
    order = np.argsort(-scores, kind="stable")
    areas = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    kept: list[int] = []
    while order.size:
        best, rest = int(order[0]), order[1:]
        kept.append(best)
        corner_low = np.maximum(boxes[best, :2], boxes[rest, :2])
        corner_high = np.minimum(boxes[best, 2:], boxes[rest, 2:])
        inter = np.prod(np.maximum(corner_high - corner_low, 0), axis=1)
        union = areas[best] + areas[rest] - inter
        iou = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
        order = rest[iou <= overlap]
    return np.array(kept, dtype=np.intp)


def similarity_transform(
    source: Floats, target: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """The 2x3 rotation, uniform scale and translation that best maps ``source`` onto ``target``.

    Least squares in closed form (Umeyama, 1991): no sampling, so the same points always give
    the same warp.
    """
    src = source.astype(np.float64)
    src_mean, dst_mean = src.mean(axis=0), target.mean(axis=0)
    src_c, dst_c = src - src_mean, target - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1  # a reflection fits better; take the best rotation instead
    rotation = u @ sign @ vt
    variance = (src_c**2).sum() / len(src)
    scale = float(np.trace(np.diag(singular) @ sign) / variance) if variance > 0 else 1.0
    matrix = np.empty((2, 3), dtype=np.float64)
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix
