# %% [markdown]
# # Train a model
# Fit one registry model on the training split, watching the validation split; save the model, its history and curves.

# %%
from mnist_lib import modelfile, models, paths, plots, split, training

# %% tags=["parameters"]
split_dir = "outputs/split"  # train/val arrays written by the split stage
out_dir = "outputs/train"  # where model.keras, history.csv, curves.png and summary.json go
model = "cnn_small"  # registry name: mlp, baseline, cnn_small, cnn_kaggle, cnn_wide
epochs = 10  # passes over the training split (the reference ran 5, then 5 more)
batch_size = 64  # images per gradient step
learning_rate = 0.001  # optimizer step size
optimizer = "adam"  # adam, sgd or rmsprop
seed = 42  # seeds weight initialisation, shuffling and TensorFlow ops (op determinism is on)
patience = 0  # stop after this many epochs without a better validation accuracy (0: run every epoch)
restore_best_weights = True  # keep the weights of the epoch with the best validation accuracy

# %% [markdown]
# ## Check the parameters
# Every value is checked here, before any data is loaded or any model is built.

# %%
config = training.TrainConfig(model=model, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                              optimizer=optimizer, seed=seed, patience=patience,
                              restore_best_weights=restore_best_weights)
config

# %% [markdown]
# ## Load the splits
# Images stay uint8 on disk and in memory; the model scales them to [0, 1] itself.

# %%
train = split.load_split(paths.resolve(split_dir), "train")
val = split.load_split(paths.resolve(split_dir), "val")
out = paths.stage_dir(out_dir)
{"train": train.images.shape, "val": val.images.shape, "classes": train.num_classes}

# %% [markdown]
# ## Build the model
# Seeds and op determinism are set first, so the same seed gives the same weights.

# %%
training.set_determinism(seed)
net = models.build_model(model, train.image_shape, train.num_classes)
net.summary()

# %% [markdown]
# ## Train
# Live curves redraw after every epoch; history.csv is written as training goes. If an earlier run was killed,
# training resumes after its last finished epoch (the state waits beside out_dir, in `train.resume.npz`).

# %%
history = training.fit(net, train, val, config, out)

# %% [markdown]
# ## Learning curves
# Training vs validation loss and accuracy; a widening gap is over-fitting.

# %%
fig = plots.learning_curves(history)
fig.savefig(out / "curves.png", dpi=100)
history.round(4)

# %% [markdown]
# ## Save the model and a summary
# The SHA-256 of the saved file is recorded beside it (`model.keras.sha256`): evaluation loads only that file.

# %%
model_sha256 = modelfile.save_model(net, out / "model.keras")
training.write_summary(out, net, config, history, len(train), model_sha256)
