"""Data stage: exploration policies, fast collection with mujoco.rollout, chunked HDF5 datasets.

    from jepa_mpc.data import Dataset, WindowSampler
    ds = Dataset.open("data/tworoom"); sampler = WindowSampler(ds, batch_size=128, window=5, seed=0)

`jepa_mpc.data.collect` (imports MuJoCo) holds `collect_main` / `bench_collect_main` for the CLI.
"""

from jepa_mpc.data.store import Dataset, WindowSampler

__all__ = ["Dataset", "WindowSampler"]
