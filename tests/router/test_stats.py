from core.stats import RateMeter


def test_rates_over_one_and_fifteen_seconds():
    meter = RateMeter(window_s=30)
    assert meter.rate(1) == 0.0
    total = 0
    for second in range(20):
        total += 1000 if second < 10 else 4000
        meter.sample(float(second), total)
    assert meter.rate(1) == 4000.0
    assert meter.rate(15) == (4000 * 10 + 1000 * 5) / 15    # what came in during seconds 5..19


def test_old_samples_are_dropped():
    meter = RateMeter(window_s=5)
    for second in range(100):
        meter.sample(float(second), second * 10)
    assert len(meter._samples) <= 6
    assert meter.rate(15) == 10.0
