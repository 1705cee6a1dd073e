# %% [markdown]
# # Sweep report
# One page for a whole parameter sweep: every run with its parameters and results, how the results move with
# each swept parameter, the best runs' learning curves, and the spread over seeds.
# Runs are ranked by a validation figure; test accuracy is shown, never used to choose.

# %%
from IPython.display import HTML

from mnist_lib import paths, sweep_plots, sweep_summary

# %% tags=["parameters"]
sweep_dir = "outputs/sweeps/example"  # the folder `mnist sweep` wrote (summary.csv, sweep.json, one folder per run)
rank_by = "train.best_val_accuracy"  # summary column that ranks runs (a validation figure, never test)
top = 3  # how many of the best runs get their learning curves drawn

# %% [markdown]
# ## All runs
# One row per run: status, wall time, swept parameters and every scalar result; click a column header to sort.

# %%
table, info = sweep_summary.read_summary(paths.resolve(sweep_dir))
HTML(sweep_summary.sortable_html(table))

# %% [markdown]
# ## Results by swept parameter
# Each finished run is a dot; the bar marks the mean, so a trend against a parameter shows at a glance.

# %%
metrics = [rank_by, "evaluate.test_accuracy"]
fig = sweep_plots.metric_vs_parameters(table, info["swept"], metrics)

# %% [markdown]
# ## Accuracy against training images
# When the sweep varied `train_size` (params/sweeps/data_efficiency.yaml), how accuracy grows with data: mean and
# spread over seeds on a log axis, so a curve still climbing says more images would pay.

# %%
fig = sweep_plots.accuracy_by_train_size(table, metrics, info["swept"])

# %% [markdown]
# ## Learning curves of the best runs
# The runs ranked highest by the validation figure, overlaid: a curve still climbing asks for more epochs.

# %%
best = sweep_summary.histories(paths.resolve(sweep_dir), table, rank_by, top)
fig = sweep_plots.overlaid_curves(best)

# %% [markdown]
# ## Mean and spread over seeds
# When seeds were swept, each other combination's mean and standard deviation tell signal from noise.

# %%
sweep_summary.seed_statistics(table, info["swept"], metrics)

# %% [markdown]
# ## Is the best configuration really better than the runner-up?
# The two configurations ranked highest on validation, paired image by image on the test split (the same seed's
# runs side by side when seeds were swept): the images only one of them gets right, and McNemar's exact test. A large
# p-value says the ranking may be luck.

# %%
sweep_summary.best_against_runner_up(paths.resolve(sweep_dir), table, info["swept"], rank_by)
