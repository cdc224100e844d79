"""The pieces of the benchmark scripts that compute numbers: Kendall's tau and BENCHMARKS.md sections."""
import sys

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import common


def test_kendall_tau_known_values():
    assert common.kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert common.kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # one discordant pair of six: (5 - 1) / 6
    assert common.kendall_tau([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(4 / 6)
    # tau-b with a tie in y: scipy.stats.kendalltau([1, 2, 3], [1, 1, 2]) = 0.8164966
    assert common.kendall_tau([1, 2, 3], [1, 1, 2]) == pytest.approx(0.8164966, abs=1e-6)


def test_sections_are_replaced_not_duplicated(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "BENCHMARKS", tmp_path / "B.md")
    common.write_section("a", "first")
    common.write_section("b", "other")
    common.write_section("a", "second")
    text = (tmp_path / "B.md").read_text()
    assert text.count("<!-- section: a -->") == 1 and "second" in text and "first" not in text and "other" in text
