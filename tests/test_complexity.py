from vdeblur.benchmarks.complexity import markdown_table, measure
from vdeblur.train.registry import build_model


def test_flops_count_matches_hand_count_for_a_known_model() -> None:
    # The default model's budget is a product promise: < 1.5 M params, < 25 GFLOPs at 720p.
    c = measure("vdeblur_fast", 1280, 720)
    assert c.params == sum(p.numel() for p in build_model("vdeblur_fast").parameters())
    assert c.params < 1.5e6 and 10 < c.gflops < 25


def test_flops_scale_with_area_and_table_lists_models() -> None:
    small, big = measure("rir", 320, 240), measure("rir", 640, 480)
    assert abs(big.gflops / small.gflops - 4) < 0.05
    table = markdown_table([small])
    assert "`rir`" in table and f"{small.params / 1e6:.2f}" in table
