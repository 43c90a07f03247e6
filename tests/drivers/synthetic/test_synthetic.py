"""The synthetic driver: its settings, the patterns' values and the pushed batches (a gateway serving
one: tests/edge/test_synthetic_device.py)."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from drivers.base import ReadResult
from drivers.sample import Status
from drivers.synthetic.driver import SyntheticDriver, typed
from drivers.synthetic.patterns import Generator
from drivers.synthetic.settings import SyntheticPoint, SyntheticSettings
from edge.config import ConfigError, parse_config


def point(pattern: str, *, amplitude: float = 2.0, period_s: float = 4.0, offset: float = 10.0, value_type: str = "float64", name: str = "p") -> SyntheticPoint:
    return SyntheticPoint(name, value_type, pattern, amplitude, period_s, offset, writable=False)


def test_a_count_generates_that_many_tags_with_the_device_defaults() -> None:
    s = SyntheticSettings.model_validate({"name": "load", "driver": "synthetic", "tags": 3, "pattern": "sine", "amplitude": 5.0})
    assert [t.name for t in s.tags] == ["t0", "t1", "t2"]
    assert [(p.pattern, p.amplitude, p.value_type) for p in s.points()] == [("sine", 5.0, "float64")] * 3
    assert s.poll_interval_s == s.interval_s and s.poll_intervals() == [1.0] * 3


@pytest.mark.parametrize(
    "body, message",
    [
        ("tags = -1", "a count of 0..1000000"),
        ('pattern = "zigzag"', "Input should be"),
        ("interval_s = 0", "greater than or equal to 0.01"),
        ('[[devices.tags]]\nname = "a"\npattern = "sine"\nwritable = true', "a writable tag needs pattern random_walk, counter, constant"),
        ('[[devices.tags]]\nname = "a"\ntype = "bool"\npattern = "ramp"', "a bool tag needs pattern square or constant"),
    ],
)
def test_bad_settings_are_located_config_errors(body: str, message: str) -> None:
    text = f'[[devices]]\nname = "load"\ndriver = "synthetic"\n{body}\n'
    with pytest.raises(ConfigError) as info:
        parse_config(text, "g.toml")
    assert len(info.value.problems) == 1 and info.value.problems[0].startswith("g.toml:") and message in info.value.problems[0]


def test_time_patterns_follow_their_formulas() -> None:
    gen = Generator([point("sine"), point("ramp"), point("square"), point("constant")])
    phase = gen.phase
    for t in (0.0, 0.5, 1.0, 3.3):
        v = gen.values(t)
        assert v[0] == pytest.approx(10 + 2 * math.sin(2 * math.pi * t / 4 + phase[0]))
        cycle = (t / 4 + phase[1] / (2 * math.pi)) % 1
        assert v[1] == pytest.approx(10 + 2 * cycle)
        cycle = (t / 4 + phase[2] / (2 * math.pi)) % 1
        assert v[2] == (12.0 if cycle < 0.5 else 8.0)
        assert v[3] == 10.0


def test_counter_counts_and_a_written_value_is_where_it_goes_on_from() -> None:
    gen = Generator([point("counter", offset=5.0), point("constant")])
    assert [gen.step(float(k))[0] for k in range(1, 4)] == [6.0, 7.0, 8.0]
    gen.set(0, 100.0)
    gen.set(1, -3.0)
    assert gen.step(4.0).tolist() == [101.0, -3.0]


def test_random_walk_wanders_near_its_offset_and_repeats_with_its_seed() -> None:
    points = [point("random_walk", amplitude=1.0, offset=50.0, name=f"w{i}") for i in range(200)]
    a, b = Generator(points, seed=7), Generator(points, seed=7)
    runs = np.array([a.step(float(k)) for k in range(2000)])
    assert np.array_equal(runs[-1], b.values(0.0) * 0 + np.array([b.step(float(k)) for k in range(2000)])[-1])
    tail = runs[500:]
    assert abs(tail.mean() - 50.0) < 0.2  # pulled back towards the offset
    assert 0.4 < tail.std() < 1.2  # spread about 0.7 amplitude (docs: drivers/synthetic/patterns.py)
    assert np.all(np.diff(runs[:, 0]) != 0)  # it changes every tick


def test_values_take_the_tag_type() -> None:
    assert typed("float64", 1.25, 0) == 1.25
    assert typed("float32", 0.1, 0) == float(np.float32(0.1))
    assert typed("int32", 2.6, 0) == 3 and typed("int32", 1e12, 0) == 2**31 - 1
    assert typed("bool", 11.0, 10.0) is True and typed("bool", 9.0, 10.0) is False


async def test_the_driver_pushes_every_tag_each_interval_on_schedule() -> None:
    settings = SyntheticSettings.model_validate({"name": "load", "driver": "synthetic", "tags": 50, "interval_s": 0.05})
    driver = SyntheticDriver.from_settings(settings)
    batches: list[ReadResult] = []
    await driver.connect()
    task = asyncio.create_task(driver.run_subscription(settings.points(), batches.append), name="synthetic-test")
    await asyncio.sleep(0.52)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await driver.close()
    assert 9 <= len(batches) <= 12  # the current values, then one batch each 50 ms
    assert all(len(b.samples) == 50 and not b.not_fetched for b in batches)
    assert all(s.status == Status.Good for b in batches for s in b.samples)
    assert batches[1].samples[0].value != batches[2].samples[0].value
    assert batches[2].samples[0].source_time > batches[1].samples[0].source_time
