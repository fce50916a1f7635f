"""The one compiled part: the exact CUSUM ARL in C (shared/stats/_lattice.c; a design on an
estimated baseline makes hundreds of them). The project's metadata is in pyproject.toml.

Optional: where no C compiler is found the build goes on without it, and shared.stats.cusum
solves with LAPACK instead (the same results, several times slower); deploy/local/setup.sh
and the Dockerfile's build stage have one."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "shared.stats._lattice",
            sources=["shared/stats/_lattice.c"],
            optional=True,
            extra_compile_args=["-O3"],
        )
    ]
)
