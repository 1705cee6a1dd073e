# %% [markdown]
# # Evaluate on the test split
# The only place the test images are read: accuracy, loss, error rate, and where the model goes wrong.

# %%
from mnist_lib import evaluation, paths, plots, split

# %% tags=["parameters"]
split_dir = "outputs/split"  # test arrays written by the split stage
model_path = "outputs/train/model.keras"  # the trained model
out_dir = "outputs/evaluate"  # where metrics.json, predictions.csv and the figures go
batch_size = 1000  # images per prediction batch

# %% [markdown]
# ## Load the model and the test split
# The model file is loaded in Keras safe mode: it cannot run code.

# %%
net = evaluation.load_model(paths.resolve(model_path))
test = split.load_split(paths.resolve(split_dir), "test")
out = paths.stage_dir(out_dir)
test.images.shape

# %% [markdown]
# ## Metrics
# Accuracy, mean cross-entropy and error count on all test images.

# %%
probabilities = evaluation.predict_proba(net, test.images, batch_size)
metrics = evaluation.summarize(test.labels, probabilities, test.class_names)
evaluation.write_metrics(out / "metrics.json", metrics)
metrics

# %% [markdown]
# ## Confusion matrix
# Rows are the true class, columns the prediction; off-diagonal cells are the errors.

# %%
matrix = evaluation.confusion_matrix(test.labels, probabilities.argmax(axis=1), test.num_classes)
fig = plots.confusion_heatmap(matrix, test.class_names)
fig.savefig(out / "confusion.png", dpi=100)

# %% [markdown]
# ## Predictions
# One row per test image (also the source of DVC's confusion plot).

# %%
table = evaluation.predictions_table(test, probabilities)
table.to_csv(out / "predictions.csv", index=False)
table.head()
