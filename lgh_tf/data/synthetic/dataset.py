"""The cached synthetic data set: one sample per (world, seed, split, index), PNGs + annotations.

Determinism: sample ``index`` of ``split`` under ``seed`` is drawn from
``np.random.default_rng([seed, SPLIT_STREAMS[split], index])`` only, so it is identical bit-for-bit
whatever the number of samples generated, the worker count or the generation order, and the
train and test splits never share a random stream. The world (``WORLDS``) picks the renderer.

Cache layout (generated on first use, re-used when complete)::

    cache_dir/<split>_s<seed>_n<num_samples>_<size>px_<world>_v<version>-<fingerprint>/
        000000.png ...            RGB images (written through cv2, i.e. converted to BGR first)
        annotations.npz           uv, xyz, K, visible, flip (+ the world's extra per-joint arrays,
                                  e.g. self_occluded, object_occluded), metadata; written last,
                                  atomically
        annotations.partA-B.npz   while generating: the annotations of samples A..B-1, written when
                                  their images are; an interrupted generation resumes after them

A directory whose ``annotations.npz`` is missing, unreadable or inconsistent is regenerated (from
its finished parts on, where an interrupted generation left them).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import logging
import multiprocessing
import os
import re
import sys
import time

import cv2
import numpy as np

from lgh_tf import files, geometry
from lgh_tf.data import schema
from lgh_tf.data.synthetic import anatomy, kinematics, realistic, rendering
from lgh_tf.data.synthetic.kinematics import REFERENCE_SIZE

# world -> (renderer(rng, image_size) -> sample dict, generator version). Bump a world's version
# whenever its renderer changes what it draws. The cache is keyed by it and by ``fingerprint``, a
# hash of the code and parameters of the world's modules (GENERATOR_MODULES), so a change there
# misses the old cache even when nobody bumped the version.
WORLDS = {
    "coded": (rendering.render_coded, 2),
    "realistic": (realistic.render_realistic, 1),
}
GENERATOR_MODULES = {
    "coded": (geometry, kinematics, rendering),
    "realistic": (geometry, kinematics, anatomy, rendering, realistic),
}
DEFAULT_WORLD = "coded"
GENERATOR_VERSION = WORLDS[DEFAULT_WORLD][1]

DEFAULT_NUM_SAMPLES = {"train": 4000, "test": 500}
SPLIT_STREAMS = {"train": 0, "test": 1}
ANNOTATIONS_FILE = "annotations.npz"
ANNOTATION_KEYS = ("uv", "xyz", "K", "visible", "flip")


def _check_world(world: str) -> None:
    if world not in WORLDS:
        raise ValueError(f"world must be one of {sorted(WORLDS)}, got {world!r}")


def render_sample(seed: int, index: int, image_size: int = REFERENCE_SIZE, split: str = "train",
                  world: str = DEFAULT_WORLD) -> dict:
    """Renders sample ``index`` of ``split`` under ``seed`` in ``world`` (see the renderers:
    ``rendering.render_coded``, ``realistic.render_realistic``)."""
    _check_world(world)
    rng = np.random.default_rng([seed, SPLIT_STREAMS[split], index])
    return WORLDS[world][0](rng, image_size)


@functools.cache
def _code_digest(module_name: str) -> str:
    """sha256 of a module's syntax tree without docstrings (comments and layout do not count)."""
    module = sys.modules[module_name]
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError):  # no source shipped: the version alone keys the cache
        return "no-source"
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()


def _parameters(module) -> str:
    """The module's parameters (upper-case module-level numbers, strings, tuples, dicts, arrays) as text."""
    kinds = (int, float, str, tuple, list, dict, np.ndarray)
    values = {name: value for name, value in vars(module).items()
              if re.fullmatch(r"_?[A-Z][A-Z0-9_]*", name) and isinstance(value, kinds)}
    return repr(sorted((name, value.tolist() if isinstance(value, np.ndarray) else value)
                       for name, value in values.items()))


def fingerprint(world: str = DEFAULT_WORLD) -> str:
    """What determines a world's samples, hashed: its version, and the code and parameters of the
    modules that draw it (12 hex digits, part of the cache directory name)."""
    _check_world(world)
    digest = hashlib.sha256(f"{world} v{WORLDS[world][1]}".encode())
    for module in GENERATOR_MODULES[world]:
        digest.update(f"{module.__name__} {_code_digest(module.__name__)} {_parameters(module)}".encode())
    return digest.hexdigest()[:12]


def split_directory(cache_dir, split: str, num_samples: int, seed: int, image_size: int,
                    world: str = DEFAULT_WORLD) -> str:
    """Where a split's PNGs and annotations live; keyed by ``fingerprint`` so generator changes regenerate."""
    _check_world(world)
    name = f"{split}_s{seed}_n{num_samples}_{image_size}px_{world}_v{WORLDS[world][1]}-{fingerprint(world)}"
    return os.path.join(os.fspath(cache_dir), name)


def _image_name(index: int) -> str:
    return f"{index:06d}.png"


def _generate_one(job) -> dict:
    """Renders one sample, writes its PNG, returns its annotations (a multiprocessing task)."""
    directory, split, seed, index, image_size, world = job
    sample = render_sample(seed, index, image_size, split, world)
    files.write_png(os.path.join(directory, _image_name(index)), sample["image"])
    return {key: sample[key] for key in ANNOTATION_KEYS + tuple(sample.get("extra_annotations", ()))}


def _worker_init() -> None:
    cv2.setNumThreads(1)


CHUNK = 1000  # samples per part file: an interrupted generation resumes from its last finished part


def _part_path(directory, start, stop) -> str:
    return os.path.join(directory, f"annotations.part{start:06d}-{stop:06d}.npz")


def _load_part(path, count) -> dict | None:
    """A finished part's annotation arrays (``count`` samples each), or None (missing, truncated, other)."""
    try:
        with np.load(path) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception:  # pylint: disable=broad-except
        return None
    joints = schema.NUM_JOINTS
    shapes = {"uv": (joints, 2), "xyz": (joints, 3), "K": (3, 3), "visible": (joints,), "flip": ()}
    if (any(value.shape[:1] != (count,) for value in arrays.values())
            or any(key not in arrays or arrays[key].shape[1:] != shape for key, shape in shapes.items())):
        return None
    return arrays


def _generate_split(directory, split, num_samples, seed, image_size, num_workers, world=DEFAULT_WORLD) -> None:
    """Renders every sample of a split into ``directory``, then writes the annotations.

    Samples go in parts of ``CHUNK``; each finished part's annotations are written at once
    (atomically, after its images), so an interrupted generation resumes at its first unfinished
    part; the parts are merged into ``annotations.npz`` at the end and removed."""
    os.makedirs(directory, exist_ok=True)  # a stale annotations.npz is replaced atomically at the end
    parts = [(start, min(start + CHUNK, num_samples)) for start in range(0, num_samples, CHUNK)]
    todo = []
    for start, stop in parts:
        done = _load_part(_part_path(directory, start, stop), stop - start)
        if done is None or not all(os.path.exists(os.path.join(directory, _image_name(i)))
                                   for i in range(start, stop)):
            todo.append((start, stop))
    resumed = num_samples - sum(stop - start for start, stop in todo)
    logging.info("Generating %d synthetic %s samples (world %s, seed %d, %dpx) into %s with %d worker(s)%s.",
                 num_samples, split, world, seed, image_size, directory, num_workers,
                 f", {resumed} already there from an interrupted generation" if resumed else "")
    start_time = time.perf_counter()
    made = 0
    log_every = max(1, num_samples // 10)

    def finished_elsewhere():  # a second process generating the same split has merged its parts
        return (os.path.exists(os.path.join(directory, ANNOTATIONS_FILE))
                and _load_annotations(directory, split, num_samples, seed, image_size, world) is not None)

    def generate(mapper):
        nonlocal made
        for start, stop in todo:
            if _load_part(_part_path(directory, start, stop), stop - start) is not None:
                continue  # written meanwhile by a second process generating the same split
            if finished_elsewhere():
                return
            jobs = [(directory, split, seed, index, image_size, world) for index in range(start, stop)]
            chunk = []
            for result in mapper(jobs):  # ordered: chunk[i] is sample start + i
                chunk.append(result)
                made += 1
                if made % log_every == 0 or made == num_samples - resumed:
                    elapsed = time.perf_counter() - start_time
                    logging.info("  %d/%d samples, %.0f samples/s", resumed + made, num_samples,
                                 made / max(elapsed, 1e-9))
            arrays = {key: np.stack([r[key] for r in chunk]) for key in chunk[0]}
            with files.atomic_path(_part_path(directory, start, stop)) as temporary, open(temporary, "wb") as f:
                np.savez(f, **arrays)

    if todo and num_workers > 1:
        # "spawn": safe even when the parent has TensorFlow's threads running.
        context = multiprocessing.get_context("spawn")
        with context.Pool(num_workers, initializer=_worker_init) as pool:
            generate(lambda jobs: pool.imap(_generate_one, jobs, chunksize=16))
    else:
        generate(lambda jobs: map(_generate_one, jobs))

    loaded = [_load_part(_part_path(directory, start, stop), stop - start) for start, stop in parts]
    if all(part is not None for part in loaded):
        annotations = {key: np.concatenate([part[key] for part in loaded]) for key in loaded[0]}
        metadata = _metadata(world, seed, split, image_size, num_samples)
        with files.atomic_path(os.path.join(directory, ANNOTATIONS_FILE)) as temporary, open(temporary, "wb") as f:
            np.savez(f, **annotations, **{f"meta_{k}": v for k, v in metadata.items()})
    elif not finished_elsewhere():
        raise RuntimeError(f"Synthetic data generation into {directory} did not complete.")
    for name in os.listdir(directory):  # also parts a second process wrote after the merge
        if name.startswith("annotations.part") and name.endswith(".npz"):
            try:
                os.remove(os.path.join(directory, name))
            except FileNotFoundError:  # removed by that second process
                pass
    elapsed = time.perf_counter() - start_time
    logging.info("Generated %d samples in %.1f s (%.0f samples/s).", made, elapsed, made / max(elapsed, 1e-9))


def _metadata(world, seed, split, image_size, num_samples) -> dict:
    return dict(version=WORLDS[world][1], fingerprint=fingerprint(world), world=world, seed=seed, split=split,
                image_size=image_size, num_samples=num_samples)


def _load_annotations(directory, split, num_samples, seed, image_size, world=DEFAULT_WORLD) -> dict | None:
    """The cached annotations if they are complete and match the request, else None."""
    path = os.path.join(directory, ANNOTATIONS_FILE)
    try:
        with np.load(path) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception:  # missing, truncated or corrupt: regenerate  pylint: disable=broad-except
        return None
    expected = _metadata(world, seed, split, image_size, num_samples)
    for key, value in expected.items():
        if f"meta_{key}" not in arrays or arrays[f"meta_{key}"].item() != value:
            return None
    if any(arrays.get(key, np.empty(0)).shape[:1] != (num_samples,)
           for key in ANNOTATION_KEYS):
        return None
    if not all(os.path.exists(os.path.join(directory, _image_name(i))) for i in range(num_samples)):
        return None
    return arrays


def load_synthetic(cache_dir, split: str = "train", num_samples: int | None = None, seed: int = 0,
                   image_size: int = REFERENCE_SIZE, num_workers: int | None = None,
                   world: str = DEFAULT_WORLD) -> schema.Records:
    """The synthetic split as Records, generating it into ``cache_dir`` on first use.

    Args:
      cache_dir: root of the cache; the split lives in ``split_directory(...)`` below it.
      split: "train" or "test" (independent random streams).
      num_samples: defaults to DEFAULT_NUM_SAMPLES[split] (4000 train, 500 test).
      seed: data set seed; (seed, split, index) determines a sample completely.
      image_size: side of the square images in pixels (intrinsics scale with it).
      num_workers: generation processes; default 2 (when available) for 64+ samples, else 1.
        The output does not depend on it.
      world: "coded" (one colour per finger; smoke tests) or "realistic" (skin, occlusion, camera
        effects; see ``realistic``).

    Returns:
      Records with absolute PNG paths; ``flip`` marks left hands whose annotations describe the
      horizontally flipped image (see the module docstring).
    """
    _check_world(world)
    if split not in SPLIT_STREAMS:
        raise ValueError(f"split must be one of {sorted(SPLIT_STREAMS)}, got {split!r}")
    if num_samples is None:
        num_samples = DEFAULT_NUM_SAMPLES[split]
    if num_samples <= 0:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    if num_workers is None:
        num_workers = min(2, os.cpu_count() or 1) if num_samples >= 64 else 1
    directory = os.path.abspath(split_directory(cache_dir, split, num_samples, seed, image_size, world))

    arrays = _load_annotations(directory, split, num_samples, seed, image_size, world)
    if arrays is None:
        _generate_split(directory, split, num_samples, seed, image_size, num_workers, world)
        arrays = _load_annotations(directory, split, num_samples, seed, image_size, world)
        if arrays is None:
            raise RuntimeError(f"Synthetic data generation into {directory} did not complete.")
    else:
        logging.info("Using cached synthetic %s split from %s.", split, directory)

    image_paths = np.array([os.path.join(directory, _image_name(i)) for i in range(num_samples)])
    return schema.Records(
        image_path=image_paths,
        uv=arrays["uv"].astype(np.float32),
        xyz=arrays["xyz"].astype(np.float32),
        K=arrays["K"].astype(np.float32),
        visible=arrays["visible"].astype(bool),
        flip=arrays["flip"].astype(bool),
        mask_path=None,
        name=f"synthetic_{split}" if world == "coded" else f"synthetic_{world}_{split}",
    )
