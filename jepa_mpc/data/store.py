"""Dataset on disk: a directory with `meta.json` and `chunk_00000.h5`, `chunk_00001.h5`, ...

Each chunk holds whole episodes as fixed-length arrays (episode axis first):

    state   (E, T+1, 4)  float32   physical state (x, y, vx, vy)
    action  (E, T, 2)    float32   action applied between state t and t+1
    qpos    (E, T+1, nq) float64   MuJoCo generalised positions
    qvel    (E, T+1, nv) float64   MuJoCo generalised velocities
    pixels  (E, T+1, 64, 64, 3) uint8   (optional)
    episode_length (E,) int32      valid control steps per episode (<= T)
    episode_index  (E,) int64      global episode index (chunk boundaries are explicit)

Every array is chunked, compressed losslessly (gzip) and carries an HDF5 fletcher32 checksum;
the chunk also stores a SHA-256 of its array contents, so any corruption is detected on open.
Files are written to `<name>.tmp` and moved into place with `os.replace` (atomic).

Reading: `Dataset.open(path)` validates every chunk and loads the arrays into RAM.
Sampling: `WindowSampler(ds, batch_size, window, seed).batch(step)` is a pure function of
(seed, step), so a resumed training run sees exactly the same data order.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from jepa_mpc.atomic import atomic_path, write_json_atomic
from jepa_mpc.errors import ConfigError, DatasetError

FORMAT_VERSION = 1
META_NAME = "meta.json"
CHUNK_RE = re.compile(r"^chunk_(\d{5})\.h5$")
# Per-time-step arrays (T+1 entries per episode) vs. per-transition arrays (T entries).
STEP_KEYS = ("state", "qpos", "qvel", "pixels")
TRANSITION_KEYS = ("action",)
ARRAY_KEYS = STEP_KEYS + TRANSITION_KEYS
INDEX_KEYS = ("episode_length", "episode_index")


# ------------------------------------------------------------------ paths, meta, atomic writes


def chunk_path(directory: str | os.PathLike, index: int) -> Path:
    return Path(directory) / f"chunk_{index:05d}.h5"


def existing_chunks(directory: str | os.PathLike) -> list[int]:
    """Sorted indices of the finished chunk files present in `directory`."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(int(m.group(1)) for p in directory.iterdir() if (m := CHUNK_RE.match(p.name)))


def remove_stale_tmp(directory: str | os.PathLike) -> list[Path]:
    """Delete leftover `*.tmp` files of an interrupted write; returns what was removed."""
    directory = Path(directory)
    removed = [p for p in directory.glob("*.tmp") if p.is_file()]
    for p in removed:
        p.unlink()
    return removed


def write_meta(directory: str | os.PathLike, meta: dict) -> None:
    write_json_atomic(Path(directory) / META_NAME, meta)


def read_meta(directory: str | os.PathLike) -> dict:
    """meta.json of a dataset directory; DatasetError (one line) if missing or invalid."""
    directory = Path(directory)
    if not directory.exists():
        raise DatasetError(f"dataset not found: {directory}")
    if not directory.is_dir():
        raise DatasetError(f"dataset path is not a directory: {directory}")
    path = directory / META_NAME
    if not path.exists():
        raise DatasetError(f"{path}: missing; {directory} is not a dataset directory (create one with `jepa-mpc collect`)")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path}: invalid JSON ({err})") from None
    if not isinstance(meta, dict) or "num_chunks" not in meta:
        raise DatasetError(f"{path}: not a jepa-mpc dataset meta file (no 'num_chunks')")
    for key in ("num_chunks", "num_episodes"):
        value = meta.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DatasetError(f"{path}: '{key}' must be a positive integer, got {value!r}")
    return meta


def content_digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of the arrays (order independent)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


# ------------------------------------------------------------------ chunk write / read


def _dataset_options(name: str, shape: tuple[int, ...]) -> dict:
    # One HDF5 chunk per episode for pixels (~1.2 MB raw, compresses ~20-50x); per-step arrays in
    # blocks of episodes. gzip is lossless and readable by every HDF5 tool; fletcher32 = checksum.
    if name == "pixels":
        chunks = (1,) + shape[1:]
        level = 1
    else:
        chunks = (min(shape[0], 256),) + shape[1:] if len(shape) > 1 else (min(shape[0], 4096),)
        level = 4
    return dict(chunks=chunks, compression="gzip", compression_opts=level, shuffle=True, fletcher32=True, track_times=False)


def write_chunk(directory: str | os.PathLike, index: int, arrays: dict[str, np.ndarray]) -> Path:
    """Write one chunk atomically (to `.tmp`, then `os.replace`). Returns the final path.

    `arrays` must hold at least state, action, episode_length, episode_index (see module doc).
    """
    import h5py

    missing = [k for k in ("state", "action", "episode_length", "episode_index") if k not in arrays]
    if missing:
        raise ValueError(f"write_chunk: missing arrays {missing}")
    num_episodes = len(arrays["episode_index"])
    for name, a in arrays.items():
        if a.shape[0] != num_episodes:
            raise ValueError(f"write_chunk: {name} has {a.shape[0]} episodes, expected {num_episodes}")
    path = chunk_path(directory, index)
    with atomic_path(path) as tmp, h5py.File(tmp, "w", track_order=True) as f:
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["chunk_index"] = index
        f.attrs["num_episodes"] = num_episodes
        f.attrs["content_sha256"] = content_digest(arrays)
        for name in sorted(arrays):
            a = np.ascontiguousarray(arrays[name])
            f.create_dataset(name, data=a, **_dataset_options(name, a.shape))
    return path


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:200] + ("..." if len(text) > 200 else "")


def _chunk_layout(path: Path, index: int | None) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{array name: (shape, dtype)} of a chunk file, without reading the data."""
    import h5py

    where = f"{path}: chunk {index if index is not None else '?'}"
    if not path.exists():
        raise DatasetError(f"{where} is missing")
    try:
        with h5py.File(path, "r") as f:
            return {name: (tuple(f[name].shape), f[name].dtype) for name in f.keys()}
    except (OSError, KeyError, ValueError, RuntimeError) as err:
        raise DatasetError(f"{where} is corrupt or truncated ({_one_line(err)})") from None


def read_chunk(
    path: str | os.PathLike, index: int | None = None, out: dict[str, np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """Read and validate one chunk file. DatasetError (one line, names file + chunk) on any problem.

    With `out` (name -> preallocated C-contiguous array of the right shape), the data is read
    straight into those arrays (no extra copy) and they are returned.
    """
    import h5py

    path = Path(path)
    where = f"{path}: chunk {index if index is not None else '?'}"
    if not path.exists():
        raise DatasetError(f"{where} is missing")
    try:
        with h5py.File(path, "r") as f:
            attrs = dict(f.attrs)
            arrays = {}
            for name in f.keys():
                if out is not None and name in out:
                    if out[name].shape != f[name].shape or out[name].dtype != f[name].dtype:
                        raise DatasetError(
                            f"{where}: array '{name}' is {f[name].dtype}{f[name].shape}, "
                            f"expected {out[name].dtype}{out[name].shape} (mixed datasets?)"
                        )
                    if out[name].size:
                        f[name].read_direct(out[name])
                    arrays[name] = out[name]
                else:
                    arrays[name] = f[name][()]
    except (OSError, KeyError, ValueError, RuntimeError) as err:
        raise DatasetError(f"{where} is corrupt or truncated ({_one_line(err)})") from None
    if index is not None and int(attrs.get("chunk_index", -1)) != index:
        raise DatasetError(f"{where} has chunk_index {attrs.get('chunk_index')} (file renamed or copied?)")
    expected = attrs.get("content_sha256")
    if expected is None or content_digest(arrays) != expected:
        raise DatasetError(f"{where} is corrupt (content checksum mismatch)")
    for key in ("state", "action", "episode_length", "episode_index"):
        if key not in arrays:
            raise DatasetError(f"{where} has no '{key}' array")
    check_finite_arrays(arrays, where)
    return arrays


def check_finite_arrays(arrays: dict[str, np.ndarray], where: str) -> None:
    """DatasetError naming the array and its first episode with a NaN/inf (a valid checksum does not
    make the numbers usable: training on them would write NaN normalisation stats)."""
    for name in sorted(arrays):
        a = arrays[name]
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            episode = int(np.argwhere(~np.isfinite(a))[0][0])
            raise DatasetError(f"{where}: array '{name}' holds non-finite values (NaN/inf), first in episode "
                               f"row {episode}")


def chunk_digest(path: str | os.PathLike) -> str:
    """The content SHA-256 a chunk file records for its arrays (verified by `read_chunk`)."""
    import h5py

    with h5py.File(path, "r") as f:
        return str(f.attrs["content_sha256"])


def dataset_digest(chunk_digests: Sequence[str]) -> str:
    """Identity of a dataset's content: SHA-256 over its chunks' content digests, in chunk order."""
    return hashlib.sha256("|".join(chunk_digests).encode()).hexdigest()


# ------------------------------------------------------------------ dataset (in RAM)


class EpisodeView:
    """`ds.episodes[i]` -> dict of that episode's arrays, trimmed to its length."""

    def __init__(self, ds: "Dataset"):
        self._ds = ds

    def __len__(self) -> int:
        return self._ds.num_episodes

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"episode {i} out of range (dataset has {n})")
        length = int(self._ds.episode_lengths[i])
        out = {}
        for key, a in self._ds.arrays.items():
            if key in STEP_KEYS:
                out[key] = a[i, : length + 1]
            elif key in TRANSITION_KEYS:
                out[key] = a[i, :length]
        return out

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return (self[i] for i in range(len(self)))


class Dataset:
    """All episodes of a dataset in RAM: `arrays[key]` is (num_episodes, T(+1), ...)."""

    def __init__(self, arrays: dict[str, np.ndarray], meta: dict | None = None, path: str | os.PathLike | None = None):
        if "state" not in arrays or "action" not in arrays:
            raise DatasetError("a dataset needs 'state' and 'action' arrays")
        num_episodes = arrays["state"].shape[0]
        lengths = arrays.get("episode_length")
        if lengths is None:
            lengths = np.full((num_episodes,), arrays["action"].shape[1], dtype=np.int32)
        self.arrays = {k: v for k, v in arrays.items() if k in ARRAY_KEYS}
        self.episode_lengths = np.asarray(lengths, dtype=np.int64)
        self.meta = dict(meta or {})
        self.path = None if path is None else Path(path)
        self._digest: str | None = None

    # -- construction
    @classmethod
    def open(cls, path: str | os.PathLike) -> "Dataset":
        """Open a dataset directory, validating meta.json and every chunk (DatasetError if not valid)."""
        path = Path(path)
        meta = read_meta(path)
        num_chunks = int(meta["num_chunks"])
        present = set(existing_chunks(path))
        missing = [i for i in range(num_chunks) if i not in present]
        if missing:
            raise DatasetError(
                f"{chunk_path(path, missing[0])}: chunk {missing[0]} of {num_chunks} is missing "
                f"(interrupted collection? rerun `jepa-mpc collect` with the same options to resume)"
            )
        # Shapes first, then read every chunk straight into preallocated arrays (peak RAM = dataset size).
        paths = [chunk_path(path, i) for i in range(num_chunks)]
        layouts = [_chunk_layout(p, i) for i, p in enumerate(paths)]
        names, counts = sorted(layouts[0]), []
        for i, lay in enumerate(layouts):
            if sorted(lay) != names or any(lay[n][0][1:] != layouts[0][n][0][1:] or lay[n][1] != layouts[0][n][1] for n in names):
                raise DatasetError(f"{paths[i]}: chunk {i} has different arrays than chunk 0 (mixed datasets?)")
            counts.append(lay["state"][0][0] if "state" in lay else 0)
        total = int(sum(counts))
        arrays = {n: np.empty((total,) + layouts[0][n][0][1:], dtype=layouts[0][n][1]) for n in names}
        offset = 0
        for i, (p, e) in enumerate(zip(paths, counts)):
            read_chunk(p, i, out={n: a[offset : offset + e] for n, a in arrays.items()})
            offset += e
        index = arrays["episode_index"]
        if not np.array_equal(index, np.arange(len(index))):
            raise DatasetError(f"{path}: episode indices are not 0..{len(index) - 1} across chunks")
        if "num_episodes" in meta and int(meta["num_episodes"]) != len(index):
            raise DatasetError(f"{path}: meta.json says {meta['num_episodes']} episodes, chunks hold {len(index)}")
        ds = cls(arrays, meta, path)
        ds._digest = dataset_digest([chunk_digest(p) for p in paths])
        return ds

    @property
    def digest(self) -> str:
        """Content identity (SHA-256) of the episodes: from the chunks' verified checksums for an opened
        dataset (a blocked view keeps its source's), over the arrays for one built in memory."""
        if self._digest is None:
            self._digest = dataset_digest([content_digest(self.arrays)])
        return self._digest

    # -- sizes
    @property
    def num_episodes(self) -> int:
        return int(self.arrays["state"].shape[0])

    @property
    def num_steps(self) -> int:
        """Number of transitions (control steps) over all episodes."""
        return int(self.episode_lengths.sum())

    @property
    def episode_len(self) -> int:
        """Maximum episode length T (actions per episode)."""
        return int(self.arrays["action"].shape[1])

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.arrays)

    @property
    def episodes(self) -> EpisodeView:
        return EpisodeView(self)

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.arrays.values()))

    def __repr__(self) -> str:
        return f"Dataset({self.path or '<memory>'}, episodes={self.num_episodes}, steps={self.num_steps}, keys={self.keys})"

    # -- statistics and splits
    def stats(self, episodes: Sequence[int] | np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Normalisation statistics (float32): state_mean/std, action_mean/std (valid steps only)."""
        idx = np.arange(self.num_episodes) if episodes is None else np.asarray(episodes)
        lengths = self.episode_lengths[idx]
        t_state = np.arange(self.arrays["state"].shape[1])
        t_action = np.arange(self.arrays["action"].shape[1])
        state = self.arrays["state"][idx][t_state[None, :] <= lengths[:, None]]
        action = self.arrays["action"][idx][t_action[None, :] < lengths[:, None]]
        out = {}
        for name, x in (("state", state), ("action", action)):
            x = x.astype(np.float64)
            out[f"{name}_mean"] = x.mean(axis=0).astype(np.float32)
            out[f"{name}_std"] = np.maximum(x.std(axis=0), 1e-6).astype(np.float32)
        return out

    def split(self, held_out_fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Deterministic episode-level split: (train_indices, held_out_indices), both sorted.

        At least one episode is held out when the fraction is > 0 and there are >= 2 episodes.
        """
        if not 0.0 <= held_out_fraction < 1.0:
            raise ConfigError(f"held_out_fraction must be in [0, 1), got {held_out_fraction}")
        # A blocked view splits its source episodes (the same split as the source dataset), so the
        # k phase copies of an episode are never on both sides.
        src = self.source_episode
        n = self.num_episodes if src is None else int(src.max()) + 1
        n_held = int(round(n * held_out_fraction))
        if held_out_fraction > 0 and n >= 2:
            n_held = min(max(n_held, 1), n - 1)
        perm = np.random.default_rng([seed, n]).permutation(n)
        train, held = np.sort(perm[n_held:]), np.sort(perm[:n_held])
        if src is None:
            return train, held
        return np.flatnonzero(np.isin(src, train)), np.flatnonzero(np.isin(src, held))

    # -- action blocks
    source_episode: np.ndarray | None = None  # for a blocked view: the source episode of each row

    def action_blocks(self, k: int) -> "Dataset":
        """A view at k times the control period: actions of k consecutive steps concatenated.

        Each episode of T steps becomes k episodes (phase offsets 0..k-1) of floor((T - k + 1) / k)
        blocks: states o, o+k, ..., and actions (n, k * A). All data is used; `split` keeps the
        k copies of an episode on the same side. k = 1 returns this dataset.
        """
        if k < 1:
            raise ConfigError(f"action_block must be >= 1, got {k}")
        if k == 1:
            return self
        if np.any(self.episode_lengths != self.episode_len):
            raise DatasetError(f"{self.path or 'dataset'}: action blocks need equal-length episodes")
        t = self.episode_len
        n = (t - k + 1) // k
        if n < 1:
            raise DatasetError(f"{self.path or 'dataset'}: episodes of {t} steps are too short for blocks of {k}")
        arrays = {}
        for key, a in self.arrays.items():
            if key in STEP_KEYS:
                arrays[key] = np.stack([a[:, o : o + n * k + 1 : k] for o in range(k)], axis=1)
            elif key in TRANSITION_KEYS:
                arrays[key] = np.stack([a[:, o : o + n * k].reshape(a.shape[0], n, -1) for o in range(k)], axis=1)
            else:
                continue
            arrays[key] = arrays[key].reshape((-1,) + arrays[key].shape[2:])
        arrays["episode_length"] = np.full((self.num_episodes * k,), n, np.int32)
        out = Dataset(arrays, {**self.meta, "action_block": k}, self.path)
        out.source_episode = np.repeat(np.arange(self.num_episodes), k)
        out._digest = self.digest
        return out


# ------------------------------------------------------------------ window sampler


class WindowSampler:
    """Random fixed-length windows of consecutive steps that never cross an episode boundary.

    `batch(step)` is a deterministic function of (seed, step): windows are drawn uniformly
    over all valid (episode, start) pairs with `np.random.default_rng([seed, step])`.
    A window of W steps holds W states/pixels/qpos/qvel and the W-1 actions between them.
    """

    def __init__(
        self,
        ds: Dataset,
        batch_size: int,
        window: int,
        seed: int = 0,
        keys: Sequence[str] = ("state", "action"),
        prefetch: int = 2,
        episodes: Sequence[int] | np.ndarray | None = None,
    ):
        if window < 2:
            raise ConfigError(f"window must be >= 2 (got {window})")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1 (got {batch_size})")
        for key in keys:
            if key not in ARRAY_KEYS:
                raise ConfigError(f"unknown sampler key {key!r}; expected some of {ARRAY_KEYS}")
            if key not in ds.arrays:
                hint = " (collect with --pixels)" if key == "pixels" else ""
                raise DatasetError(f"{ds.path or 'dataset'}: has no '{key}' array{hint}")
        self.ds = ds
        self.batch_size = int(batch_size)
        self.window = int(window)
        self.seed = int(seed)
        self.keys = tuple(keys)
        self.prefetch = max(1, int(prefetch))
        self.episodes = np.arange(ds.num_episodes) if episodes is None else np.asarray(episodes, dtype=np.int64)
        self.rows = slice(None)  # the rows of each batch this sampler reads (a process's share: parallel.process_rows)
        # valid window starts s satisfy s + window - 1 <= length  (states 0..length)
        counts = np.maximum(ds.episode_lengths[self.episodes] - self.window + 2, 0)
        self._cum = np.cumsum(counts)
        self.num_windows = int(self._cum[-1]) if len(self._cum) else 0
        if self.num_windows == 0:
            raise DatasetError(
                f"{ds.path or 'dataset'}: no episode is long enough for windows of {window} steps "
                f"(max episode length {int(ds.episode_lengths.max(initial=0))})"
            )

    def indices(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(episode indices (B,), window starts (B,)) for this step."""
        rng = np.random.default_rng([self.seed, int(step)])
        flat = rng.integers(0, self.num_windows, size=self.batch_size)
        pos = np.searchsorted(self._cum, flat, side="right")
        start = flat - np.concatenate([[0], self._cum])[pos]
        return self.episodes[pos], start

    def batch(self, step: int) -> dict[str, np.ndarray]:
        ep, start = (x[self.rows] for x in self.indices(step))
        out = {}
        for key in self.keys:
            width = self.window - 1 if key in TRANSITION_KEYS else self.window
            t = start[:, None] + np.arange(width)[None, :]
            out[key] = self.ds.arrays[key][ep[:, None], t]
        return out

    def iterate(self, start_step: int = 0, num_steps: int | None = None) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """Yield (step, batch) for step = start_step, start_step + 1, ... (forever if num_steps is None),
        built `prefetch` batches ahead by a background thread."""
        stop = threading.Event()
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        end = None if num_steps is None else start_step + num_steps

        def produce() -> None:
            step = start_step
            try:
                while not stop.is_set() and (end is None or step < end):
                    item = (step, self.batch(step))
                    while not stop.is_set():
                        try:
                            q.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    step += 1
                q.put(None)
            except BaseException as err:  # surfaced in the consumer
                q.put(err)

        thread = threading.Thread(target=produce, name="WindowSampler-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                item = q.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while thread.is_alive():  # drain so a blocked producer can finish
                try:
                    q.get(timeout=0.05)
                except queue.Empty:
                    pass
