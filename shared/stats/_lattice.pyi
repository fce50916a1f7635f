"""Types of the C module shared/stats/_lattice.c (built by setup.py where a compiler is)."""

from typing_extensions import Buffer

def curve(up: int, down: int, p: float, out: Buffer, /) -> None:
    """out[L - 1] = the exact zero-state ARL of the lattice CUSUM (up, down) at error rate p
    and limit L, for L = 1..len(out) doubles (inf or nan where it overflows)."""
