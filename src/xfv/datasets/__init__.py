"""Benchmark protocols (LFW and derivatives) read into one pair-list type."""

from xfv.datasets.pairs import Pair, PairList
from xfv.datasets.readers import PROTOCOLS, Protocol, get_protocol, read_protocol

__all__ = ["PROTOCOLS", "Pair", "PairList", "Protocol", "get_protocol", "read_protocol"]
