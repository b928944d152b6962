# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Your own model: a Hugging Face GPT-2 on a factorial design
#
# The theory's predictions are about *any* model trained on next-token statistics with attribute structure.
# This notebook takes a Hugging Face `GPT2LMHeadModel` (built from a `GPT2Config` in code: nothing is
# downloaded), trains it with `transformers.Trainer` on the exact-statistics sequences of a $3\times3$
# factorial design, and records its Gram trajectories with `ufmtheory.baseline.hf.GramCallback`:
#
# * $H^\top H$: the last hidden state at each context's label position,
# * $WW^\top$: the label rows of the output embedding,
#
# then detects the semantic phases, compares them with the modified UFM run on **the same clock** (the same
# AdamW settings, step for step), and keeps the model at the semantic peak of $W$ with a `PeakMonitor`.
# A tiny model (1 layer, width 16) and 300 steps keep the run to a few seconds.

# %%
import os
import tempfile
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a kernel without widgets

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded: the model is built from its config
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import matplotlib.pyplot as plt
import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

import ufmtheory as ut
from ufmtheory.analysis.timemap import same_clock_theory
from ufmtheory.baseline.hf import GramCallback, design_dataset, hf_recorder

torch.set_num_threads(1)  # tiny models: one thread is fastest on a small machine
design = ut.designs.factorial((3, 3))
ds = design_dataset(design)  # rows: BOS a_i b_j label, labels = -100 except at the label
print(len(ds), "rows of", ds.seq_len, "tokens, vocabulary", ds.vocab_size)

# %% [markdown]
# ## Train with a Gram callback and a peak monitor

# %%
torch.manual_seed(0)
config = GPT2Config(
    vocab_size=ds.vocab_size, n_positions=ds.seq_len, n_embd=16, n_layer=1, n_head=2,
    resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
    tie_word_embeddings=False,
)
model = GPT2LMHeadModel(config)
ds.check_model(model)  # a design whose vocabulary does not fit the model is refused here
monitor = ut.PeakMonitor("W", patience=3, drop=0.5)  # keeps the state dict at the peak of W's strength
callback = GramCallback(hf_recorder(ds, steps=300, monitor=monitor))
args = TrainingArguments(
    output_dir=tempfile.mkdtemp(), max_steps=300, per_device_train_batch_size=len(ds),
    learning_rate=3e-3, lr_scheduler_type="constant", weight_decay=0.0, report_to=[], use_cpu=True,
    save_strategy="no", logging_strategy="no", disable_tqdm=True, seed=0,
)
Trainer(model=model, args=args, train_dataset=ds, callbacks=[callback]).train()
traj = callback.trajectory()
print(traj.status, len(traj), "snapshots; loss", f"{traj.loss[0]:.3f} -> {traj.loss[-1]:.2e}")

# %% [markdown]
# ## Phases of the trained model
# Semantic strength is the attribute-energy fraction of the centred Gram minus its ETF value: positive
# means more attribute structure than the simplex ETF has.

# %%
for which in ("H", "W"):
    print(f"-- {which}\n" + ut.detect_phases(traj, design, which=which).table())
print(f"monitor: peak of W at step {monitor.best_step} (strength {monitor.best_value:.3f}),",
      f"peaked {monitor.peaked}, collapsed {monitor.collapsed}")

# %% [markdown]
# ## The theory on the same clock
# `same_clock_theory` runs the modified UFM with the model's own optimiser (AdamW, lr, betas, weight decay
# from `traj.meta["config"]`, filled in by the callback) for the same steps, from the GPT's N(0, 0.02²)
# initialisation; `ut.compare` with `clock="same"` then compares the curves step for step: no time map is
# fitted.

# %%
problem = ut.ModifiedUFM(design, dim=16, alpha=1.0, beta=1.0, ridge="H", lam_W=1e-3, lam_H=1e-3)
theory = same_clock_theory(problem, traj)
cmp = ut.compare(theory, traj, design, clock="same")
print(cmp.table())

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
for ax, which in zip(axes, ("H", "W"), strict=True):
    m = traj.metrics(design, which=which)
    keep = m["ts"] > 0
    ax.plot(m["ts"][keep], m["semantic_strength"][keep], "k", lw=2, label="GPT-2 (Trainer)")
    mt = theory.metrics(design, which=which)
    keep_t = mt["ts"] > 0
    ax.plot(mt["ts"][keep_t], mt["semantic_strength"][keep_t], "C1", label="modified UFM, same AdamW")
    if which == "W":
        ax.axvline(monitor.best_step, color="C2", ls="--", label="kept: peak of W")
    ax.set_xscale("log")
    ax.set_xlabel("optimiser step")
    ax.set_title(f"semantic strength of {which}")
axes[1].legend(fontsize=8)
plt.show()

# %% [markdown]
# ## The model at the semantic peak
# The monitor kept a CPU copy of the state dict at the step where $W$'s semantic strength peaked; loading it
# gives back the most semantic model of the run (its Gram equals the snapshot there).

# %%
peak_model = GPT2LMHeadModel(config)
peak_model.load_state_dict(monitor.best_state_dict)
i = int(np.flatnonzero(traj.ts == monitor.best_step)[0])
W = peak_model.lm_head.weight[torch.tensor(np.array(ds.data.label_ids))].detach().double().numpy()
print("peak step", monitor.best_step, "strength", round(monitor.best_value, 3))
print("W Gram of the kept model equals the snapshot:", np.allclose(W @ W.T, traj.gram_W[i], rtol=1e-12, atol=1e-12))
