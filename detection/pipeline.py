"""The streaming input pipeline: batches read from an index by grain, with bounded prefetch.

``grain`` (the JAX ecosystem's data loader) runs it: a ``MapDataset`` whose element k is training batch k
(:class:`detection.batching.TrainingPlan`, a pure function of the seed and k), mapped by
:func:`detection.batching.assemble_batch` (read, decode, resize, pad, flip) in ``threads`` background
threads of the training process, or with ``workers`` > 0 in that many worker processes
(``mp_prefetch``). Memory is bounded by the prefetch buffers (``prefetch`` batches per thread or worker),
not by the number of images. The stream's position (the next batch's k) is saved in the training
checkpoint, and a resumed training reads from it the same batches as an uninterrupted one, with any
number of workers. grain's own iterator state is not used for this: a multi-worker iterator's state
depends on the worker count, and a two-worker iterator asked for its state then took grain's 25-second
worker-kill timeout to close (grain 0.2.18, measured here: 28 s against 3 s without the state).

Why threads by default: on two CPU cores decoding a batch of the built-in 128-px PNGs takes a few
percent of a tiny-detector step, and Pillow releases the GIL while it decodes, so background threads keep
the step fed; a worker process costs seconds to start and about 200 MB (each imports grain, and grain
imports JAX). Use workers for large images or a GPU (``benchmarks/input_pipeline.py`` measures both).

A bad image met mid-stream (truncated, unreadable, of another size than its annotation) raises the
:class:`~detection.errors.DatasetError` that names it, from a thread or a worker alike; a worker that
dies is reported by grain as an error — the stream never hangs or yields a wrong batch.

Small evaluation splits (up to ``CACHE_BYTES`` of decoded pixels, e.g. the 200-image ``search_val`` that
every proxy training of a search evaluates on) are decoded once per process and kept
(:func:`evaluation_batches`); larger ones stream.
"""

from __future__ import annotations

import collections
import multiprocessing
import warnings
from collections.abc import Iterator

import grain
import numpy as np
from absl import flags

from detection.batching import BatchEntry, TrainingPlan, assemble_batch, evaluation_entries
from detection.dataset_index import DatasetIndex
from detection.geometry import Geometry

CACHE_BYTES = 256 * 2**20  # decoded evaluation splits up to this size stay in memory
_cached: collections.OrderedDict[tuple, list] = collections.OrderedDict()


class _Plan:
    """grain's random-access source of a training stream: element k is batch k's :class:`BatchEntry`."""

    def __init__(self, plan: TrainingPlan, steps: int):
        self.plan, self.steps = plan, steps
        self._epoch: tuple[int, list[BatchEntry]] | None = None  # the last epoch used, per process

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> BatchEntry:
        number, position = divmod(int(step), self.plan.batches_per_epoch)
        if self._epoch is None or self._epoch[0] != number:
            self._epoch = (number, self.plan.epoch(number))
        return self._epoch[1][position]

    def __getstate__(self):
        return {"plan": self.plan, "steps": self.steps, "_epoch": None}


class _Assemble:
    """grain's map: a :class:`BatchEntry` to its batch dict."""

    def __init__(self, index: DatasetIndex, geometry: Geometry):
        self.index, self.geometry = index, geometry

    def __call__(self, entry: BatchEntry) -> dict[str, np.ndarray]:
        return assemble_batch(self.index, self.geometry, entry)


class BatchStream(Iterator):
    """An iterator of batches that knows its position; close it (or use ``with``) when done.

    Batch k of the underlying ``MapDataset`` is a pure function of k, so the position alone restores the
    stream (:meth:`set_state` starts reading at it), with any number of workers.
    """

    def __init__(self, dataset: grain.MapDataset, *, threads: int, workers: int, prefetch: int):
        if workers < 0 or threads < 1 or prefetch < 1:
            raise ValueError(f"workers must be >= 0, threads and prefetch >= 1; got {workers}, {threads}, {prefetch}")
        self._dataset, self._threads, self._workers, self._prefetch = dataset, threads, workers, prefetch
        self._iterator = None  # started on the first batch, from `position`
        self._closed = False
        self.position = 0  # the index of the next batch

    def _start(self):
        if self._workers and multiprocessing.current_process().daemon:
            warnings.warn(f"{self._workers} input worker process(es) cannot start in this daemonic process (a Dask "
                          "worker, say); decoding in threads instead (Dask: set distributed.worker.daemon to "
                          "False to allow them)", stacklevel=3)
            self._workers, self._threads = 0, max(self._threads, 2)
        stream = self._dataset[self.position :].to_iter_dataset(
            grain.ReadOptions(num_threads=self._threads, prefetch_buffer_size=self._prefetch))
        if self._workers:
            if not flags.FLAGS.is_parsed():
                flags.FLAGS.mark_as_parsed()  # grain <= 0.2.18 reads an absl flag when it starts workers (grain#1355)
            stream = stream.mp_prefetch(grain.MultiprocessingOptions(num_workers=self._workers,
                                                                     per_worker_buffer_size=self._prefetch))
        return iter(stream)

    def __next__(self) -> dict[str, np.ndarray]:
        if self._closed or self.position >= len(self._dataset):
            raise StopIteration
        if self._iterator is None:
            self._iterator = self._start()
        batch = next(self._iterator)
        if self._workers:  # plain copies, so grain's shared-memory blocks are released now rather than at exit
            batch = {key: np.array(value) for key, value in batch.items()}
        self.position += 1
        return batch

    def get_state(self) -> dict:
        """The stream's position as a JSON-ready dict."""
        return {"position": self.position}

    def set_state(self, state: dict) -> None:
        """Continue at the position of a :meth:`get_state` (of a stream built with the same settings)."""
        self._stop()
        self.position = int(state["position"])

    def _stop(self) -> None:
        if self._iterator is not None and hasattr(self._iterator, "close"):
            self._iterator.close()
        self._iterator = None

    def close(self) -> None:
        """Stop the worker processes and threads (idempotent)."""
        self._stop()
        self._closed = True

    def __enter__(self) -> BatchStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def training_stream(index: DatasetIndex, geometry: Geometry, *, batch_size: int, seed: int, steps: int,
                    flip: bool = True, workers: int = 0, threads: int | None = None,
                    prefetch: int = 2) -> BatchStream:
    """The ``steps`` training batches over ``index``: shuffled and flipped by epoch from ``seed``."""
    plan = TrainingPlan(canvas_of=geometry.canvas_number(index.sizes), batch_size=batch_size, seed=seed, flip=flip,
                        short_side_choices=geometry.train_short_sides)
    dataset = grain.MapDataset.source(_Plan(plan, steps)).map(_Assemble(index, geometry))
    return BatchStream(dataset, threads=threads or (1 if workers else 2), workers=workers, prefetch=prefetch)


def _decoded_bytes(index: DatasetIndex, geometry: Geometry) -> int:
    canvases = np.asarray(geometry.canvases)[geometry.canvas_number(index.sizes)]
    return int(np.prod(canvases, axis=1).sum()) * 3


def evaluation_batches(index: DatasetIndex, geometry: Geometry, batch_size: int, *, workers: int = 0,
                       cache: bool = True) -> Iterator[tuple[dict[str, np.ndarray], BatchEntry]]:
    """Yield (batch, entry) over every image of ``index`` once; ``entry.count`` rows are real, the rest padding.

    Splits of at most ``CACHE_BYTES`` decoded pixels are decoded once per process and kept (``cache``).
    """
    entries = evaluation_entries(index, geometry, batch_size)
    keep = cache and _decoded_bytes(index, geometry) <= CACHE_BYTES
    key = (index.annotation_file, tuple(index.paths), index.class_names, geometry, batch_size) if keep else None
    if keep and key in _cached:
        _cached.move_to_end(key)
        yield from zip(_cached[key], entries, strict=True)
        return
    kept = []
    dataset = grain.MapDataset.source(entries).map(_Assemble(index, geometry))
    with BatchStream(dataset, threads=1 if workers else 2, workers=workers, prefetch=2) as stream:
        for batch, entry in zip(stream, entries, strict=True):
            if keep:
                kept.append(batch)
            yield batch, entry
    if keep:
        _cached[key] = kept
        while sum(_decoded_bytes_of(batches) for batches in _cached.values()) > CACHE_BYTES:
            _cached.popitem(last=False)


def _decoded_bytes_of(batches: list[dict[str, np.ndarray]]) -> int:
    return sum(batch["images"].nbytes for batch in batches)
