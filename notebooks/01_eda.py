# %% [markdown]
# # Exploratory data analysis
# What the digits look like before any model sees them: samples, class balance, pixel intensities,
# the mean image of each class and a 2-D PCA map.

# %%
from mnist_lib import datasets, eda, paths, plots

# %% tags=["parameters"]
data_format = "mnist"  # mnist, idx, kaggle_csv or image_folder (README: "Bring your own data")
data_dir = "outputs/data/raw"  # the data's folder, relative to the project root
train_folder = "train"  # image_folder: sub-folder of data_dir with one folder of images per class
test_folder = "test"  # image_folder: optional test sub-folder (class folders, or unlabeled images)
image_size = 28  # image_folder: images are resized to image_size x image_size
channels = 1  # image_folder: 1 (grayscale) or 3 (RGB)
skip_bad_images = False  # image_folder: skip unreadable images (listed in a warning) instead of stopping
out_dir = "outputs/scratch/01_eda"  # where the figures and summary.json go (the pipeline passes outputs/eda)
sample_size = 5000  # images drawn for the pixel histogram and the PCA map
seed = 0  # seed of the random samples shown

# %% [markdown]
# ## Load the data
# For `mnist` the four raw files are checked against their pinned SHA-256 before they are read; every format is
# validated while reading, and legal but suspicious data gets a warning.

# %%
splits = datasets.load(data_format, paths.resolve(data_dir), train_folder=train_folder, test_folder=test_folder,
                       image_size=image_size, channels=channels, skip_bad_images=skip_bad_images)
out = paths.stage_dir(out_dir)
train = splits["train"]
table = eda.summary(splits)
eda.write_summary(out / "summary.json", table)
table

# %% [markdown]
# ## Sample digits
# A random grid with the label of each image: a first check that images and labels line up.

# %%
fig = plots.sample_grid(train, seed=seed)
fig.savefig(out / "samples.png", dpi=100)

# %% [markdown]
# ## Class distribution
# A split should keep these proportions; strong imbalance would call for stratification or weighting.

# %%
fig = plots.class_distribution(train)
fig.savefig(out / "class_distribution.png", dpi=100)

# %% [markdown]
# ## Pixel intensities
# Most pixels are background; the rest spread up to 255, which is why the models scale inputs to [0, 1].

# %%
fig = plots.pixel_histogram(train, sample=sample_size, seed=seed)
fig.savefig(out / "pixel_histogram.png", dpi=100)

# %% [markdown]
# ## Mean image of each class
# The average shape per class shows how much writing styles overlap.

# %%
fig = plots.mean_images(train)
fig.savefig(out / "mean_images.png", dpi=100)

# %% [markdown]
# ## PCA projection
# Two principal components of the raw pixels already separate several classes; the rest need a non-linear model.

# %%
points, picked, explained = eda.pca_2d(train.images, sample=sample_size, seed=seed)
title = f"PCA of {len(picked):,} training images ({explained.sum():.1%} of the variance)"
fig = plots.projection(points, train.labels[picked], train.class_names, title)
fig.savefig(out / "pca.png", dpi=100)
