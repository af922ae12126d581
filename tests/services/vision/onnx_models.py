"""Tiny stand-ins for an insightface model pack, built with ``onnx`` and a synthetic face to find.

The real packs are large and licensed for non-commercial research only, so the tests build two
small graphs with the real models' input and output names, ranks and dynamic dimensions, and
whose outputs depend on the pixels fed in: a wrong colour order, scaling, letterbox mapping,
anchor layout or alignment in the engine shows up as a wrong box or a wrong embedding.

**The synthetic face** (:func:`draw_face`) is a square whose red channel is 255 on a background
whose red channel is 0; its green and blue channels carry a 4 x 4 pattern of blocks drawn from a
seed, which stands for identity.

**The SCRFD stand-in** marks the pixels whose normalised red value is above 0 and counts, with
cumulative sums along each row and column, how many marked pixels lie left of, above, right of
and below each pixel. Inside an upright rectangle these counts are exactly the distances to its
edges, which is what SCRFD's box branch predicts. At every anchor (every ``stride`` px from the
corner, two per point like SCRFD's) it outputs those distances in stride units, the five
keypoints at the ArcFace template's fractions of the box (so the aligned crop is the face
square itself), and the score ``sigmoid(d / stride - 1)`` for marked anchors, ``d`` the nearest
edge: at least 0.5 from one stride inside the face, 0 outside it. Every anchor inside a face
decodes to the same box at every stride, so the engine's non-maximum suppression must keep
exactly one per face. Faces must not share rows or columns, or their counts add up.

**The ArcFace stand-in** averages the 112 x 112 crop over 14 px cells and projects the green and
blue cells through a fixed random matrix to 512 values: the same face aligned from two images
gives nearly the same vector, two patterns give nearly orthogonal ones.

**The liveness stand-in** has the signature of insightface's liveness add-on (``[N, 3, 80, 80]``
RGB in [0, 1], ``[N]`` live probability) and answers the mean of the red channel: the share of
its 80 x 80 crop that the face covers. The add-on's template puts the synthetic face's square at
14.80 to 65.20 px of the crop on both axes, so an aligned face scores
:data:`LIVENESS_FACE_SHARE`; reading blue for red or skipping the scaling shows up at once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from services.vision.engine import RGBImage

# What insightface's buffalo_l exports call their tensors; the engine relies on order only.
DETECTOR_INPUT = "input.1"
DETECTOR_OUTPUTS = ("448", "471", "494", "451", "474", "497", "454", "477", "500")
RECOGNISER_INPUT = "input.1"
RECOGNISER_OUTPUT = "683"

STRIDES = (8, 16, 32)
ANCHORS = 2
TEMPLATE_FRACTIONS = (
    np.array(
        [
            [38.2946, 51.6963],
            [73.5318, 51.5014],
            [56.0252, 71.7366],
            [41.5493, 92.3655],
            [70.7299, 92.2041],
        ]
    )
    / 112.0
)
LIVENESS_INPUT = "input"
LIVENESS_OUTPUT = "live_prob"
LIVENESS_FACE_SHARE = ((65.1972 - 14.8038) / 80) ** 2
"""What the liveness stand-in answers for a face drawn by :func:`draw_face`, about 0.397."""

_OPSET = [helper.make_opsetid("", 18)]
_IR_VERSION = 9  # opset 18's; older onnxruntime builds refuse newer IR versions


def _const(name: str, values: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(values, name=name)


def scrfd_model(by_stride: bool = False) -> onnx.ModelProto:
    """A detector with det_10g's signature: ``[1, 3, H, W]`` in, nine ``[N, k]`` outputs.

    The outputs come as scores, boxes and keypoints, each for strides 8, 16, 32, unless
    ``by_stride`` lists them stride by stride, as some other SCRFD exports do.
    """
    int64 = np.int64
    nodes = [
        helper.make_node("Slice", ["input.1", "c0", "c1", "c1"], ["red"]),
        helper.make_node("Greater", ["red", "zero"], ["marked_bool"]),
        helper.make_node("Cast", ["marked_bool"], ["marked"], to=TensorProto.FLOAT),
        helper.make_node("CumSum", ["marked", "axis_w"], ["left"], exclusive=1),
        helper.make_node("CumSum", ["marked", "axis_h"], ["top"], exclusive=1),
        helper.make_node("CumSum", ["marked", "axis_w"], ["right"], reverse=1),
        helper.make_node("CumSum", ["marked", "axis_h"], ["bottom"], reverse=1),
        helper.make_node("Concat", ["left", "top", "right", "bottom"], ["edges"], axis=1),
    ]
    # Keypoint offsets from the anchor are linear in the four edge distances: for a template
    # fraction f, x = -left + f * (left + right) and y = -top + f * (top + bottom).
    kps_weights = np.zeros((10, 4, 1, 1), dtype=np.float32)
    for k, (fx, fy) in enumerate(TEMPLATE_FRACTIONS):
        kps_weights[2 * k, 0], kps_weights[2 * k, 2] = fx - 1, fx
        kps_weights[2 * k + 1, 1], kps_weights[2 * k + 1, 3] = fy - 1, fy
    initializers = [
        _const("c0", np.array([0], int64)),
        _const("c1", np.array([1], int64)),
        _const("zero", np.array(0.0, np.float32)),
        _const("one", np.array(1.0, np.float32)),
        _const("axis_w", np.array(3, int64)),
        _const("axis_h", np.array(2, int64)),
        _const("hw_axes", np.array([2, 3], int64)),
        _const("hw_starts", np.array([0, 0], int64)),
        _const("hw_ends", np.array([2**62, 2**62], int64)),
        _const("kps_weights", kps_weights),
        _const("anchor_axis", np.array([3], int64)),
    ]
    outputs: dict[str, list[str]] = {"score": [], "bbox": [], "kps": []}
    for stride in STRIDES:
        s = f"_{stride}"
        initializers += [
            _const("steps" + s, np.array([stride, stride], int64)),
            _const("inverse" + s, np.array(1.0 / stride, np.float32)),
        ]
        grid = ["hw_starts", "hw_ends", "hw_axes", "steps" + s]
        nodes += [
            helper.make_node("Slice", ["edges", *grid], ["edges" + s]),
            helper.make_node("Slice", ["marked", *grid], ["marked" + s]),
            helper.make_node("Mul", ["edges" + s, "inverse" + s], ["bbox_map" + s]),
            helper.make_node("ReduceMin", ["bbox_map" + s, "c1"], ["nearest" + s], keepdims=1),
            helper.make_node("Sub", ["nearest" + s, "one"], ["logit" + s]),
            helper.make_node("Sigmoid", ["logit" + s], ["sigmoid" + s]),
            helper.make_node("Mul", ["sigmoid" + s, "marked" + s], ["score_map" + s]),
            helper.make_node("Conv", ["bbox_map" + s, "kps_weights"], ["kps_map" + s]),
        ]
        for kind, width in (("score", 1), ("bbox", 4), ("kps", 10)):
            name = kind + s
            initializers.append(_const("shape" + name, np.array([-1, width], int64)))
            # [1, C, h, w] -> [h * w * 2, C], both anchors of a grid point adjacent.
            nodes += [
                helper.make_node(
                    "Transpose", [kind + "_map" + s], ["hwc" + name], perm=[0, 2, 3, 1]
                ),
                helper.make_node("Unsqueeze", ["hwc" + name, "anchor_axis"], ["one_anchor" + name]),
                helper.make_node(
                    "Concat", ["one_anchor" + name] * ANCHORS, ["anchors" + name], axis=3
                ),
                helper.make_node("Reshape", ["anchors" + name, "shape" + name], [name]),
            ]
            outputs[kind].append(name)
    # Rename the nine outputs to the export's numeric names, in SCRFD's order.
    kinds = ("score", "bbox", "kps")
    if by_stride:
        ordered = [outputs[kind][level] for level in range(3) for kind in kinds]
        widths = [1, 4, 10] * 3
    else:
        ordered = [name for kind in kinds for name in outputs[kind]]
        widths = [1] * 3 + [4] * 3 + [10] * 3
    for internal, public in zip(ordered, DETECTOR_OUTPUTS, strict=True):
        nodes.append(helper.make_node("Identity", [internal], [public]))
    graph = helper.make_graph(
        nodes,
        "tiny_scrfd",
        [helper.make_tensor_value_info(DETECTOR_INPUT, TensorProto.FLOAT, [1, 3, "?", "?"])],
        [
            helper.make_tensor_value_info(public, TensorProto.FLOAT, [f"n{i}", width])
            for i, (public, width) in enumerate(zip(DETECTOR_OUTPUTS, widths, strict=True))
        ],
        initializers,
    )
    return _finish(graph)


def arcface_model(seed: int = 0, batch: int | None = None) -> onnx.ModelProto:
    """A recogniser with w600k_r50's signature: ``[n, 3, 112, 112]`` in, ``[n, 512]`` out.

    ``batch`` fixes the batch dimension, as some exports do; ``None`` leaves it symbolic.
    ``seed`` picks the projection, so two seeds are two different "models".
    """
    projection = np.random.default_rng(seed).standard_normal((3 * 8 * 8, 512)).astype(np.float32)
    projection[: 8 * 8] = 0  # red only says "face here"; identity is in green and blue
    nodes = [
        helper.make_node("AveragePool", [RECOGNISER_INPUT], ["cells"], kernel_shape=[14, 14],
                         strides=[14, 14]),
        helper.make_node("Flatten", ["cells"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "projection"], [RECOGNISER_OUTPUT]),
    ]
    n: int | str = "None" if batch is None else batch
    graph = helper.make_graph(
        nodes,
        "tiny_arcface",
        [helper.make_tensor_value_info(RECOGNISER_INPUT, TensorProto.FLOAT, [n, 3, 112, 112])],
        [helper.make_tensor_value_info(RECOGNISER_OUTPUT, TensorProto.FLOAT, [n, 512])],
        [_const("projection", projection)],
    )
    return _finish(graph)


def liveness_model() -> onnx.ModelProto:
    """A liveness model with the add-on's signature that scores the red share of its crop."""
    nodes = [
        helper.make_node("Slice", [LIVENESS_INPUT, "c0", "c1", "c1"], ["red"]),
        helper.make_node("ReduceMean", ["red", "chw"], [LIVENESS_OUTPUT], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_liveness",
        [helper.make_tensor_value_info(LIVENESS_INPUT, TensorProto.FLOAT, ["N", 3, 80, 80])],
        [helper.make_tensor_value_info(LIVENESS_OUTPUT, TensorProto.FLOAT, ["N"])],
        [
            _const("c0", np.array([0], np.int64)),
            _const("c1", np.array([1], np.int64)),
            _const("chw", np.array([1, 2, 3], np.int64)),
        ],
    )
    return _finish(graph)


def constant_liveness_model(live: float) -> onnx.ModelProto:
    """A liveness model with the add-on's signature that answers ``live`` for every face: 0
    always says spoof, 1 always says real. (The input still flows through, so the graph is
    not constant-folded into one with no input.)"""
    nodes = [
        helper.make_node("ReduceMean", [LIVENESS_INPUT, "chw"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["nothing", "live"], [LIVENESS_OUTPUT]),
    ]
    graph = helper.make_graph(
        nodes,
        "constant_liveness",
        [helper.make_tensor_value_info(LIVENESS_INPUT, TensorProto.FLOAT, ["N", 3, 80, 80])],
        [helper.make_tensor_value_info(LIVENESS_OUTPUT, TensorProto.FLOAT, ["N"])],
        [
            _const("chw", np.array([1, 2, 3], np.int64)),
            _const("zero", np.array(0.0, np.float32)),
            _const("live", np.array(live, np.float32)),
        ],
    )
    return _finish(graph)


def _finish(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=_OPSET, producer_name="mirrorhub-tests")
    model.ir_version = _IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def write_pack(
    directory: Path,
    detector_file: str = "det_10g.onnx",
    recogniser_file: str = "w600k_r50.onnx",
    arcface_seed: int = 0,
    arcface_batch: int | None = None,
    scrfd_by_stride: bool = False,
) -> Path:
    """Save both stand-ins under ``directory`` as a buffalo_l-style pack and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    onnx.save(scrfd_model(scrfd_by_stride), directory / detector_file)
    onnx.save(arcface_model(arcface_seed, arcface_batch), directory / recogniser_file)
    return directory


def blank_image(height: int, width: int, seed: int = 0) -> RGBImage:
    """A background with no red and random green and blue, for faces to be drawn on."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    image[..., 0] = 0
    return image


def draw_face(image: RGBImage, left: int, top: int, size: int, identity: int) -> None:
    """Paint the synthetic face of ``identity`` as a ``size`` px square at (``left``, ``top``)."""
    pattern = np.random.default_rng(1000 + identity).integers(0, 2, (4, 4, 2)) * 255
    rows = np.minimum(np.arange(size) * 4 // size, 3)
    face = image[top : top + size, left : left + size]
    face[..., 0] = 255
    face[..., 1:] = pattern[rows[:, None], rows[None, :]]


def face_keypoints(left: int, top: int, size: int) -> np.ndarray:
    """Where the SCRFD stand-in puts the five keypoints of a face drawn by :func:`draw_face`."""
    return np.array([left, top]) + TEMPLATE_FRACTIONS * size
