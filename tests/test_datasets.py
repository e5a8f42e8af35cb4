"""Protocol readers: real files parse, malformed files fail naming file, line and problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import LFW_ROOT, SHARED
from xfv.datasets import read_protocol
from xfv.datasets.readers import fold_overlap_note, read_lfw_pairs, read_path_pairs, read_two_line_pairs
from xfv.errors import DatasetError


def write(tmp_path: Path, text: str, name: str = "pairs.txt") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_real_lfw_pairs_have_ten_balanced_folds(lfw_root: Path) -> None:
    pairs = read_protocol("lfw", lfw_root)
    assert len(pairs) == 6000
    assert np.bincount(pairs.folds).tolist() == [600] * 10
    assert np.bincount(pairs.folds[pairs.same]).tolist() == [300] * 10
    assert all(p.image1.is_file() and p.image2.is_file() for p in pairs.pairs[::97])
    first = pairs.pairs[0]
    assert (first.identity1, first.image1.name, first.image2.name) == (
        "Abel_Pacheco",
        "Abel_Pacheco_0001.jpg",
        "Abel_Pacheco_0004.jpg",
    )


def test_real_cplfw_list_with_header_and_crlf() -> None:
    root = SHARED / "data" / "cplfw"
    if not root.is_dir():
        pytest.skip(f"CPLFW pair list not found at {root}")
    pairs = read_protocol("cplfw", root)
    assert len(pairs) == 6000 and pairs.same.sum() == 3000
    assert np.bincount(pairs.folds[~pairs.same]).tolist() == [300] * 10
    assert pairs.pairs[0].identity1 == "Ingrid_Betancourt"


def test_lfw_reader_builds_paths_and_labels(tmp_path: Path) -> None:
    text = "10 1\n" + "".join(f"A{k} 1 2\nB{k} 3 C{k} 4\n" for k in range(10))
    pairs = read_lfw_pairs(write(tmp_path, text), tmp_path / "img")
    assert pairs.same.tolist() == [True, False] * 10
    assert pairs.folds.tolist() == [k for k in range(10) for _ in range(2)]
    assert pairs.pairs[1].image2 == tmp_path / "img" / "C0" / "C0_0004.jpg"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty pairs file"),
        ("ten 300\n", ":1: expected a header"),
        ("1 1\nA 1 2\n", "file has 1"),
        ("1 1\nA 1 2\nB 1 C x\n", ":3: image number 'x'"),
        ("1 1\nA 1 2\nB 1 C\n", ":3: image number 'C'"),
        ("1 1\nA 1 2\nB 1 2\n", ":3: expected an impostor pair"),
        ("1 1\nA 1 2 3 4 5\nB 1 C 2\n", ":2: expected 'name i j' or 'name1 i name2 j', got 6 fields"),
    ],
)
def test_malformed_lfw_pairs_name_file_line_and_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DatasetError) as error:
        read_lfw_pairs(path, tmp_path)
    assert str(path) in str(error.value)
    assert problem in str(error.value)


def test_two_line_reader_balances_folds_of_a_genuine_first_file(tmp_path: Path) -> None:
    genuine = "".join(f"P{k}_1.jpg 1\nP{k}_2.jpg 1\n" for k in range(20))
    impostor = "".join(f"P{k}_1.jpg 0\nQ{k}_1.jpg 0\n" for k in range(20))
    pairs = read_two_line_pairs(write(tmp_path, "name same\r\n" + genuine + impostor), tmp_path, "calfw")
    assert np.bincount(pairs.folds[pairs.same]).tolist() == [2] * 10
    assert np.bincount(pairs.folds[~pairs.same]).tolist() == [2] * 10
    assert pairs.pairs[-1].identity2 == "Q19"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("A_1.jpg 1\n", "odd number of image lines"),
        ("A_1.jpg 1\nA_2.jpg\n", ":2: expected 'IMAGE LABEL'"),
        ("A_1.jpg 1\nA_2.jpg 0\n", ":1: the two lines of a pair disagree"),
        ("A.jpg 1\nA_2.jpg 1\n", ":1: image name 'A.jpg' is not 'Name_N.jpg'"),
        ("A_1.jpg 1\nA_2.jpg 1\n", "cannot be split into 10 equal folds"),
    ],
)
def test_malformed_two_line_lists(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(DatasetError, match="pairs.txt") as error:
        read_two_line_pairs(write(tmp_path, text), tmp_path, "cplfw")
    assert problem in str(error.value)


def test_path_pair_reader_uses_identities_without_labels(tmp_path: Path) -> None:
    lines = "".join(f"A/A_0001.jpg A/A_0002.jpg\nA/A_0001.jpg B{k}/B{k}_0001.jpg\n" for k in range(10))
    pairs = read_path_pairs(write(tmp_path, lines), tmp_path, "sllfw")
    assert pairs.same.tolist() == [True, False] * 10
    with pytest.raises(DatasetError, match=":1: expected 'IMAGE1 IMAGE2"):
        read_path_pairs(write(tmp_path, "A/A_0001.jpg\n"), tmp_path, "sllfw")


def test_unknown_protocol_and_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="unknown protocol 'ytf'"):
        read_protocol("ytf", tmp_path)
    with pytest.raises(DatasetError, match="dataset root not found"):
        read_protocol("lfw", tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="no image folder found"):
        read_protocol("lfw", tmp_path)


def test_real_xqlfw_list_folds_are_not_identity_disjoint_and_the_reader_says_so(tmp_path: Path) -> None:
    source = SHARED / "data" / "xqlfw" / "xqlfw_pairs.txt"
    if not source.is_file():
        pytest.skip(f"XQLFW pair list not found at {source}")
    (tmp_path / "xqlfw_pairs.txt").write_bytes(source.read_bytes())
    (tmp_path / "xqlfw_aligned_112").mkdir()
    pairs = read_protocol("xqlfw", tmp_path)
    assert pairs.name == "xqlfw" and len(pairs) == 6000 and pairs.input_mode is None
    assert (
        len(pairs.unique_images()) == 7263
        and len({p.identity1 for p in pairs.pairs} | {p.identity2 for p in pairs.pairs}) == 3743
    )
    assert pairs.notes == (
        "folds as the pairs file gives them, not identity-disjoint: 2,213 of 3,743 identities appear in more "
        "than one fold, so a fold's threshold and calibration were fitted on some of its people",
    )
    if LFW_ROOT.is_dir():
        assert fold_overlap_note(read_protocol("lfw", LFW_ROOT)) == ""  # LFW's View 2 folds are identity-disjoint
