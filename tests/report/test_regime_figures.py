"""The regime figure: one panel per definition and d-regime, saved as PNG."""
from ufm.report.regime_figures import regime_figure


def test_the_regime_figure_is_written(tmp_path):
    out = regime_figure(tmp_path / "sub" / "regimes.png", K=3, lambda_ratio=10.0, definitions=("features", "full"),
                        resolution=60)
    assert out == tmp_path / "sub" / "regimes.png" and out.stat().st_size > 10_000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
