# %% [markdown]
# # Train / validation / test split
# A seeded split of the training images, stratified so every class keeps its share, plus the untouched test set.
# Models and hyperparameters are chosen on validation only; the test split is read by evaluation alone.

# %%
from mnist_lib import datasets, paths, plots, split

# %% tags=["parameters"]
data_format = "mnist"  # mnist (the verified raw IDX files) or idx (any folder of MNIST-named IDX files)
data_dir = "outputs/data/raw"  # folder holding the data, relative to the project root
out_dir = "outputs/split"  # where train.npz, val.npz, test.npz and the summary go
val_fraction = 0.1  # share of each class held out for validation
seed = 0  # seed of the split

# %% [markdown]
# ## Load the data

# %%
splits = datasets.load(data_format, paths.resolve(data_dir))
out = paths.stage_dir(out_dir)
{name: len(data) for name, data in splits.items()}

# %% [markdown]
# ## Split, stratified by class
# Each class gives the same fraction of its images to validation; the index sets are checked to be disjoint.

# %%
train_indices, val_indices = split.stratified_split(splits["train"].labels, val_fraction, seed)
parts = {
    "train": split.subset(splits["train"], train_indices),
    "val": split.subset(splits["train"], val_indices),
    "test": splits["test"],
}
split.write_splits(out, parts, seed, val_fraction)

# %% [markdown]
# ## Class counts per split
# Bars of equal shape across splits confirm the stratification.

# %%
counts = split.class_counts(parts)
counts.to_csv(out / "class_counts.csv")
fig = plots.split_counts(counts)
fig.savefig(out / "class_counts.png", dpi=100)
counts.T
