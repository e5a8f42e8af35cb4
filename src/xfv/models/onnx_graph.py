"""Building ONNX graphs node by node: what xfv's converters (dlib's ``.dat``, TF.js) share."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper


class GraphBuilder:
    """Accumulates ONNX nodes and initializers; each node's output is named after the node, and
    every name is made unique (a suffix ``_2``, ``_3``, ... where one is taken or ``reserved``)."""

    def __init__(self, reserved: Iterable[str] = ()) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names: set[str] = set(reserved)

    def unique(self, name: str) -> str:
        candidate, count = name, 1
        while candidate in self._names:
            count += 1
            candidate = f"{name}_{count}"
        self._names.add(candidate)
        return candidate

    def constant(self, name: str, value: np.ndarray) -> str:
        onnx_name = self.unique(name)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), onnx_name))
        return onnx_name

    def node(self, op: str, inputs: list[str], name: str, **attributes: Any) -> str:
        onnx_name = self.unique(name)
        self.nodes.append(helper.make_node(op, inputs, [onnx_name], name=onnx_name, **attributes))
        return onnx_name
