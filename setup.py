"""The compiled parts, in C: the exact CUSUM ARL (shared/stats/_lattice.c; a design on an
estimated baseline makes hundreds of them) and event times as epoch seconds
(shared/_rfc3339.c; ingest reads one per raw event). The project's metadata is in
pyproject.toml.

Optional: where no C compiler is found the build goes on without them, and the same results
come slower: shared.stats.cusum solves with LAPACK (several times slower), shared.rfc3339
asks pydantic-core. deploy/local/setup.sh and the Dockerfile's build stage have one."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "shared.stats._lattice",
            sources=["shared/stats/_lattice.c"],
            optional=True,
            extra_compile_args=["-O3"],
        ),
        Extension(
            "shared._rfc3339",
            sources=["shared/_rfc3339.c"],
            optional=True,
            extra_compile_args=["-O3"],
        ),
    ]
)
