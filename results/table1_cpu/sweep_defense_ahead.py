"""The defense's accuracy-vs-ε sweep, computed on the idle core while the defense's Boundary
column still ran in its own `--rows defense` process (logs/sweep_defense_ahead.log).

It builds the same 200 images, model, steps and seeds as ``scfront reproduce table1 --preset
cpu`` and writes the same ``runs/table1_cpu/sweeps/defense/sweep.json``, whose points the table1
command then found done. Run from the repository root.
"""
import logging
from pathlib import Path
import torch
from scfront.reproduction.table1 import Table1Settings, recipe_config, obtain_model
from scfront.reproduction.columns import table1_plan
from scfront.reproduction.rows import resolve_rows
from scfront.reproduction.sweep import accuracy_sweep
from scfront.data import eval_subset_indices, load_dataset
from scfront.evaluation import EvalData

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
torch.set_num_threads(1)
out = Path("runs/table1_cpu")
settings = Table1Settings(preset="cpu", data_root=Path("../shared/datasets"), out_dir=out,
                          reuse={"defense": Path("results/train/cifar10_cpu_defense")}, rows=("defense",))
defense = recipe_config(settings, "defense")
plan = table1_plan("cpu", defense.evaluation)
(source,) = resolve_rows("cpu", ("defense",), settings.reuse, None, out / "models")
test = load_dataset(defense.data, settings.data_root, "test")
index = eval_subset_indices(len(test), plan.evaluation.n_images, plan.evaluation.subset_seed)
data = EvalData(index, test.images[index], test.labels[index])
model = obtain_model(source, settings).to("cpu").eval()
n = min(plan.budget.sweep_images, int(data.labels.shape[0]))
x, y = data.batch(slice(0, n), torch.device("cpu"))
accuracy_sweep(model, x, y, out / "sweeps" / "defense", steps=plan.evaluation.steps, seed=0,
               batch_size=plan.evaluation.batch_size)
