"""A synthetic device: generated tags that change on a schedule, for testing SCADA screens and load.

``settings.py`` (pure: the config model and the points), ``patterns.py`` (pure: the values of every
pattern at a tick, vectorised), ``driver.py`` (the driver: pushes a batch of changes each interval).
"""
