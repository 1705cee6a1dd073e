# %% [markdown]
# # Train a model
# Fit one registry model (or an ensemble of them) on the training split, watching the validation split; save the
# model, its history and curves.

# %%
from mnist_lib import batches, modelfile, paths, plots, recipe, split, training

# %% tags=["parameters"]
split_dir = "outputs/split"  # train/val arrays written by the split stage
out_dir = "outputs/scratch/03_train"  # where model.keras, history, curves, summary go (pipeline: outputs/train)
model = "cnn_strong"  # registry name: cnn_strong, mlp, baseline, cnn_small, cnn_kaggle, cnn_wide
epochs = 18  # passes over the training split
max_images_seen = 0  # fewer epochs for a large split: each network sees at most this many images (0: no limit)
batch_size = 128  # images per gradient step
learning_rate = 0.003  # optimizer step size (the peak of a one-cycle schedule)
optimizer = "adam"  # adam, sgd or rmsprop
lr_schedule = "one_cycle"  # constant, exponential, cosine or one_cycle
lr_decay = 0.9  # exponential schedule: factor applied to the learning rate per epoch
warmup_fraction = 0.25  # one_cycle schedule: share of the steps spent rising from learning_rate/25 to the peak
label_smoothing = 0.1  # share of each target spread over all classes (0: plain one-hot targets)
rotation = 10.0  # augmentation: random rotation up to +- this many degrees (0: none)
zoom = 0.1  # augmentation: random scale in 1 +- zoom (0: none)
shift = 0.1  # augmentation: random shift up to +- this share of the image size (0: none)
seed = 42  # seeds weight initialisation, shuffling, augmentation and TensorFlow ops (op determinism is on)
patience = 0  # stop after this many epochs without a better validation accuracy (0: run every epoch)
restore_best_weights = True  # keep the weights of the epoch with the best validation accuracy
ensemble_size = 1  # members trained with seeds seed, seed+1, ... and their own validation splits; softmax averaged
tta = True  # test-time augmentation: predict by averaging over the input shifted one pixel each way
hidden_activation = "relu"  # mlp only: the hidden layer's activation (the reference used softmax)
precision = "float32"  # float32, or mixed (float16 on a GPU, bfloat16 on a CPU)
temperature_scaling = True  # calibrate the probabilities: fit a softmax temperature on the validation split

# %% [markdown]
# ## Check the parameters
# Every value is checked here, before any data is loaded or any model is built.

# %%
config = recipe.TrainConfig(
    model=model, epochs=epochs, max_images_seen=max_images_seen, batch_size=batch_size, learning_rate=learning_rate,
    optimizer=optimizer, lr_schedule=lr_schedule, lr_decay=lr_decay, warmup_fraction=warmup_fraction,
    label_smoothing=label_smoothing, rotation=rotation, zoom=zoom, shift=shift, seed=seed, patience=patience,
    restore_best_weights=restore_best_weights, ensemble_size=ensemble_size, tta=tta,
    hidden_activation=hidden_activation, precision=precision, temperature_scaling=temperature_scaling,
)
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
# ## Augmentation
# What the network sees: training images after random rotation, zoom and shift (drawn inside the tf.data pipeline,
# from the seed and the epoch, so a resumed run sees the same ones).

# %%
plots.augmentation_grid(batches.augmentation_examples(train, config));

# %% [markdown]
# ## Train
# Each member is seeded (op determinism on) and built, then trained with live curves redrawn after every epoch;
# history.csv is written as training goes. If an earlier run was killed, training resumes after its last
# finished epoch (the state waits beside out_dir, in `train.resume.npz`, one file per ensemble member). Then each
# member's softmax temperature is fitted on its validation split (`temperature_scaling`): the predicted classes stay,
# the probabilities become calibrated (summary.json records each temperature and the validation NLL before and after).
# Made for any dataset size: batch-norm statistics are recomputed from training images before every validation (so
# the best epoch and the saved model never use stale averages), a small training split trains on smaller batches
# (at least 8 steps an epoch), and a run whose validation accuracy stays near chance or far below its training
# accuracy ends with a warning here that says what to try (summary.json keeps it under `warnings`).

# %%
net, history = training.train(train, val, config, out)
net.summary()

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
training.write_summary(out, net, config, history, model_sha256)
