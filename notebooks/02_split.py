# %% [markdown]
# # Train / validation / test split
# A seeded split of the training images, stratified so every class keeps its share, plus the untouched test set.
# Models and hyperparameters are chosen on validation only; the test split is read by evaluation alone.

# %%
from mnist_lib import datasets, paths, plots, split

# %% tags=["parameters"]
data_format = "mnist"  # mnist, idx, kaggle_csv or image_folder (README: "Bring your own data")
data_dir = "outputs/data/raw"  # the data's folder, relative to the project root
train_folder = "train"  # image_folder: sub-folder of data_dir with one folder of images per class
test_folder = "test"  # image_folder: optional test sub-folder (class folders, or unlabeled images)
image_size = 28  # image_folder: images are resized to image_size x image_size
channels = 1  # image_folder: 1 (grayscale) or 3 (RGB)
skip_bad_images = False  # image_folder: skip unreadable images (listed in a warning) instead of stopping
out_dir = "outputs/scratch/02_split"  # where the split files and summary go (the pipeline passes outputs/split)
val_fraction = 0.1  # share of each class held out for validation
test_fraction = 0.1  # share of each class held out as the test split when the data has no test set of its own
train_size = 1.0  # training images kept after the validation split: a fraction in (0, 1], or a count above 1
seed = 0  # seed of the split

# %% [markdown]
# ## Load the data
# Every file, row and image is validated while reading; legal but suspicious data (heavy class imbalance,
# images shared by train and test) gets a warning here.

# %%
split.check_train_size(train_size)
splits = datasets.load(data_format, paths.resolve(data_dir), train_folder=train_folder, test_folder=test_folder,
                       image_size=image_size, channels=channels, skip_bad_images=skip_bad_images)
out = paths.stage_dir(out_dir)
{name: len(data) for name, data in splits.items()}

# %% [markdown]
# ## Split, stratified by class
# Each class gives the same fraction of its images to validation (and to test, when the data has no test set);
# the index sets are checked to be disjoint. `train_size` below 1.0 keeps a stratified, seeded subset of the
# training images for learning curves (a smaller subset lies inside a larger one); validation and test stay whole.

# %%
parts = split.make_splits(splits, val_fraction, test_fraction, seed, train_size)
split.write_splits(out, parts, {"data_format": data_format, "seed": seed, "val_fraction": val_fraction,
                                "train_size": train_size,
                                "test_from": "data" if "test" in splits else f"train ({test_fraction:.0%} held out)"})

# %% [markdown]
# ## Class counts per split
# Bars of equal shape across splits confirm the stratification.

# %%
counts = split.class_counts(parts)
counts.to_csv(out / "class_counts.csv")
fig = plots.split_counts(counts)
fig.savefig(out / "class_counts.png", dpi=100)
counts.T
