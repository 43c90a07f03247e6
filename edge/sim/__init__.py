"""Built-in simulated plant: a heated tank with a pump, served over Modbus TCP.

``plant`` and ``registers`` are pure; ``server`` holds the pymodbus server and the tick task, so
importing the pure parts does not pull in pymodbus.
"""
