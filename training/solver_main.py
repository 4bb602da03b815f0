"""Dora entry point for fine-tunes: AudioCraft's training main with three changes.

1. This project's `config/` folder is appended to Hydra's search path, so our groups (the job's
   dataset, the debug LM scale) compose with AudioCraft's own tree.
2. Distributed init picks gloo when no CUDA device is visible (AudioCraft always asks flashy for
   nccl), so data-parallel training also runs on CPU processes (tests, CPU-only boxes).
3. The MusicGen solver is ours (training/solver.py): gradient accumulation over micro-batches,
   per-update losses in `train_steps.jsonl`, optional torch.compile.

Launched as `dora -P training --main_module solver_main run ...` (see training/launch.py) or,
for multi-node jobs, through torchrun.
"""

from __future__ import annotations

import flashy
import torch
from audiocraft import train as ac_train
from audiocraft.environment import AudioCraftEnvironment
from dora import hydra_main

from training.hydra_config import AUDIOCRAFT_CONFIG_DIR, register_search_path

register_search_path()


def _contiguous_sample_ids() -> None:
    """AudioCraft 1.3.0 hashes `prompt_wav.numpy().data` to name generated samples, which fails
    (BufferError) for the non-contiguous prompts of stereo models at the end of every stereo
    run. Hash a contiguous copy instead; the ids are unchanged for mono."""
    from audiocraft.utils.samples.manager import SampleManager

    original = SampleManager._get_sample_id
    if getattr(original, "_contiguous", False):
        return

    def _get_sample_id(self, index, prompt_wav, conditions):  # type: ignore[no-untyped-def]
        if prompt_wav is not None:
            prompt_wav = prompt_wav.contiguous()
        return original(self, index, prompt_wav, conditions)

    _get_sample_id._contiguous = True  # type: ignore[attr-defined]
    SampleManager._get_sample_id = _get_sample_id  # type: ignore[method-assign]


_contiguous_sample_ids()


def distributed_backend() -> str:
    return "nccl" if torch.cuda.is_available() else "gloo"


@hydra_main(config_path=str(AUDIOCRAFT_CONFIG_DIR), config_name="config", version_base="1.1")
def main(cfg):  # type: ignore[no-untyped-def]
    ac_train.init_seed_and_system(cfg)
    flashy.setup_logging(
        level=str(cfg.logging.level).upper(),  # type: ignore[arg-type]  # flashy takes names too
        log_name="solver.log.{rank}",
    )
    flashy.distrib.init(distributed_backend())
    solver = get_solver(cfg)
    return solver.run()


def get_solver(cfg):  # type: ignore[no-untyped-def]
    """`audiocraft.train.get_solver` with our MusicGen solver (gradient accumulation:
    training/solver.py): the global batch sizes become per-process ones, as there."""
    from audiocraft import solvers

    from training.solver import FineTuneSolver

    world = flashy.distrib.world_size()
    assert cfg.dataset.batch_size % world == 0
    cfg.dataset.batch_size //= world
    for split in ["train", "valid", "evaluate", "generate"]:
        if hasattr(cfg.dataset, split) and hasattr(cfg.dataset[split], "batch_size"):
            assert cfg.dataset[split].batch_size % world == 0
            cfg.dataset[split].batch_size //= world
    ac_train.resolve_config_dset_paths(cfg)
    if cfg.solver == "musicgen":
        return FineTuneSolver(cfg)
    return solvers.get_solver(cfg)


main.dora.dir = AudioCraftEnvironment.get_dora_dir()


# Dora's experiment signature leaves out what follows the number of training processes, so a
# re-run with another GPU or process count resumes the same experiment (the job's identity,
# `musicgen_ft_job`, covers the batch size the user asked for). Dora reads its exclusions from
# the entry point, not from the composed config, so they are added here.
# The micro-batch and the precision follow the GPUs (their memory, bf16 support), and neither
# changes what is trained: a re-run on other hardware resumes the same experiment too. Nor does
# the token cache (the same codes, encoded once) or activation checkpointing (recomputed, the
# same activations).
PROCESS_DEPENDENT = [
    "dataset.batch_size",
    "dataset.valid.num_samples",
    "dataset.evaluate.num_samples",
    "dataset.generate.num_samples",
    "optim.ema.device",
    "musicgen_ft_micro_batch",
    "musicgen_ft_compile",
    "musicgen_ft_token_cache",
    "transformer_lm.checkpointing",
    "autocast_dtype",
    "optim.adam.fused",
]
main.dora.exclude += [k for k in PROCESS_DEPENDENT if k not in main.dora.exclude]


if __name__ == "__main__":
    main()
