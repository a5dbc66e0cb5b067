"""Whether the training step is compiled (trainer.compile), and why: one line for the log;
and compiling it.

trainer.compile true or false forces it; "auto" (the default) compiles when the run is long
enough to repay the compile, i.e. when its planned steps (epochs x batches per epoch) exceed
the break-even bench/compile_break_even.py measured for the model (docs/performance.md).
trainer.compile_mode (a torch.compile mode, e.g. "reduce-overhead" for CUDA graphs) compiles.

The break-even was measured on a CPU with torch's compile cache empty (the first run of a
model): a later run finds the compiled graphs in torch's own caches (Inductor's FX graph and
AOTAutograd caches, on by default, in TORCHINDUCTOR_CACHE_DIR, torch's default
/tmp/torchinductor_<user>) and compiles in a fraction of the time; on a GPU a step saves more.
Both make compiling pay sooner, so the rule errs towards eager.

The compiled step draws its random numbers as the eager one does (Inductor's fallback_random:
torch's generator, in the same order), so that a seed gives the same run, to float rounding,
whether "auto" compiles it or not; Inductor's own generator would draw other numbers. (A
compile_mode takes no options: with one, Inductor draws its own.)
"""
import os

import torch

# Batches after which the compiled step has paid for its compile on a CPU, cold cache
# (docs/performance.md): GraphVAE's measured (3,717, rounded up); RecurrentGraphVAE's from a
# compile that had not finished after 100 minutes and GraphVAE's saving per step. A model not
# measured takes the largest.
BREAK_EVEN_STEPS = {"GraphVAE": 4_000, "RecurrentGraphVAE": 4_000}


def decide(setting, mode, model_name, planned_steps, data_parallel):
    """(whether to compile, the log's line saying why) for trainer.compile `setting` and
    compile_mode `mode`."""
    if mode is not None:
        compile_it, why = True, f"compiled (trainer.compile_mode {mode!r})"
    elif setting == "auto":
        compile_it, why = decide_auto(model_name, planned_steps, data_parallel)
    else:
        compile_it = setting
        why = f"{'compiled' if setting else 'eager'} (trainer.compile {str(setting).lower()})"
    cached = f"; compiled graphs cached in {cache_folder()}" if compile_it else ""
    return compile_it, f"Training step: {why}{cached}"


def decide_auto(model_name, planned_steps, data_parallel):
    if data_parallel:  # DDP inside a compiled step is untested (docs/scaling_out.md)
        return False, ("eager (trainer.compile auto: not under DDP; trainer.compile true "
                       "compiles)")
    break_even = BREAK_EVEN_STEPS.get(model_name, max(BREAK_EVEN_STEPS.values()))
    if planned_steps > break_even:
        return True, (f"compiled (trainer.compile auto: {planned_steps:,} planned steps, more "
                      f"than the {break_even:,} after which compiling {model_name} pays)")
    return False, (f"eager (trainer.compile auto: {planned_steps:,} planned steps, compiling "
                   f"{model_name} pays after {break_even:,}; trainer.compile true forces it)")


def cache_folder():
    """Where torch keeps compiled graphs: TORCHINDUCTOR_CACHE_DIR, or torch's default."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    return os.path.abspath(os.environ.get("TORCHINDUCTOR_CACHE_DIR") or default_cache_dir())


def training_objective(objective, settings, model_name, planned_steps, data_parallel):
    """(the training step's objective, compiled or not; whether compiled; the log's line
    saying why) for the trainer's settings (see the module's docstring for its random draws)."""
    mode = settings["compile_mode"]
    compile_it, note = decide(settings["compile"], mode, model_name, planned_steps,
                              data_parallel)
    if compile_it:
        objective = torch.compile(objective, options={"fallback_random": True}) \
            if mode is None else torch.compile(objective, mode=mode)
    return objective, compile_it, note
