"""The loop every cleanup shares: delete in bounded batches, so a run is safe while the
application serves traffic."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

__all__ = ["delete_in_batches"]


async def delete_in_batches(
    batch: Callable[[], Awaitable[int]],
    batch_size: int,
    *,
    max_batches: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Await ``batch`` until it comes back short of ``batch_size`` (nothing is left), at most
    ``max_batches`` times. Returns the sum of what the batches returned.

    Args:
        batch: takes up to ``batch_size`` rows in short transactions of its own (never one
            spanning the run) and returns how many it took; a short batch ends the run, so it
            must come back short once its rows are gone, or the run ends only at
            ``max_batches``.
        progress: called after each batch with the sum so far.

    Raises:
        StoreUnavailable: the database failed (from ``batch``).
    """
    total = batches = 0
    while max_batches is None or batches < max_batches:
        batches += 1
        done = await batch()
        total += done
        if progress is not None:
            progress(total)
        if done < batch_size:
            break
    return total
