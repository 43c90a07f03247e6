"""Build and metadata for edgetwin.

The twin kernels are compiled from ``kernels/_kalman.pyx``, ``kernels/_ident.pyx`` and
``kernels/_detect.pyx`` with Cython. Set ``EDGE_KERNELS_PURE=1`` to skip the extensions; the
package then runs on the NumPy references (``kernels.IMPLEMENTATION`` says which one is active).
"""

import glob
import os
import shutil

from setuptools import Extension, find_packages, setup
from setuptools.command.build_py import build_py

# Shipped configs, copied into the package as edge/data/ (read with importlib.resources, edge/shipped.py).
SHIPPED_CONFIGS = ["config/demo.toml", "config/production.toml", "config/schema.json", "config/*.service", "config/*.patterns.json"]


class build_py_with_configs(build_py):
    """build_py that also copies the shipped configs into ``edge/data/`` of the build.

    ``config/`` stays the source folder; an editable install reads it in place instead.
    """

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = os.path.join(self.build_lib, "edge", "data")
        os.makedirs(target, exist_ok=True)
        for pattern in SHIPPED_CONFIGS:
            for path in sorted(glob.glob(pattern)):
                shutil.copyfile(path, os.path.join(target, os.path.basename(path)))


def kernel_extensions() -> list:
    if os.environ.get("EDGE_KERNELS_PURE"):
        return []
    from Cython.Build import cythonize  # build requirement (pyproject.toml); fail loudly if missing

    return cythonize(
        [
            Extension("kernels._kalman", ["kernels/_kalman.pyx"], extra_compile_args=["-O3"]),
            Extension("kernels._ident", ["kernels/_ident.pyx"], extra_compile_args=["-O3"]),
            Extension("kernels._detect", ["kernels/_detect.pyx"], extra_compile_args=["-O3"]),
        ],
        compiler_directives={"language_level": 3, "embedsignature": True},
        annotate=bool(os.environ.get("EDGE_CYTHON_ANNOTATE")),
    )


setup(
    name="edgetwin",
    version="0.1.0",
    description="OPC UA edge gateway with a digital twin inside",
    python_requires=">=3.11",
    packages=find_packages(include=["edge", "edge.*", "drivers", "drivers.*", "kernels", "kernels.*"]),
    package_data={"kernels": ["*.pyx", "*.pyi"], "drivers": ["**/*.toml"]},
    ext_modules=kernel_extensions(),
    install_requires=[
        # asyncua and pymodbus move fast: pinned to the versions the tests cover.
        "asyncua==2.1.0",
        "pymodbus[serial]==3.16.1",
        "numpy>=1.26",
        "structlog>=24.1",
        "pydantic>=2.7,<3",
        "prometheus-client>=0.26,<1",  # [metrics]: exposition, parser, ProcessCollector (edge/metrics)
        # MQTT / Sparkplug B (edge.mqtt): the asyncio client on paho-mqtt, and the payload encoding
        "aiomqtt>=2.5,<3",
        "paho-mqtt>=2.1,<3",
        "protobuf>=5.26,<8",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-asyncio>=1.0,<2",
            "hypothesis>=6.100",
            "pyModbusTCP==0.3.1",
            "filterpy>=1.4.5",
            "scipy>=1.10",  # brute-force reconstruction checks in tests/edge/twin/diagnosis/test_rbc.py
            "matplotlib>=3.7",
            "ruff>=0.17,<0.18",  # lint and format (.ci/run); the rule set is in pyproject.toml
            "mypy>=2.4,<2.5",  # type check of drivers/ and kernels/ (.ci/run)
            # tests/test_package.py builds the wheel with --no-build-isolation, from this environment
            "Cython>=3.0,<4",
            "setuptools>=65",
            "wheel>=0.40",
        ],
        "plot": ["matplotlib>=3.7"],  # edgetwin replay --plot
    },
    entry_points={"console_scripts": ["edgetwin = edge.cli:main"]},
    cmdclass={"build_py": build_py_with_configs},
    zip_safe=False,  # the shipped configs are read as files (edge/shipped.py)
)
