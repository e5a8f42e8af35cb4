"""Benchmark protocols (LFW and derivatives) read into one pair-list type."""

from xfv.datasets.pairs import Pair, PairList
from xfv.datasets.readers import PROTOCOL_INPUT_MODES, READERS, read_protocol

__all__ = ["PROTOCOL_INPUT_MODES", "READERS", "Pair", "PairList", "read_protocol"]
