# %% [markdown]
# # Evaluate on the test split
# The only place the test images are read: accuracy, per-class scores, where the model goes wrong and how far
# its confidence can be trusted. An unlabeled test split (Kaggle's test.csv) gets predictions and a submission file.

# %%
from mnist_lib import evaluation, paths, plots, runtime, split

# %% tags=["parameters"]
split_dir = "outputs/split"  # test arrays written by the split stage
model_path = "outputs/train/model.keras"  # the trained model
train_summary = "outputs/train/summary.json"  # the train stage's summary: model name and seed (optional)
out_dir = "outputs/scratch/04_evaluate"  # where metrics, tables and figures go (pipeline: outputs/evaluate)
batch_size = 1000  # images per prediction batch
calibration_bins = 15  # equal-width confidence bins of the reliability diagram and the ECE
top_pairs = 10  # most confused (true, predicted) pairs listed
gallery_size = 32  # misclassified test images shown, most confident errors first

# %% [markdown]
# ## Check the parameters
# Every value is checked before the model or any image is loaded.

# %%
config = evaluation.EvaluateConfig(batch_size=batch_size, calibration_bins=calibration_bins, top_pairs=top_pairs,
                                   gallery_size=gallery_size)
config

# %% [markdown]
# ## Load the model and the test split
# Keras safe mode keeps the model file from running code, and its input and output must fit the test split.

# %%
net = evaluation.load_model(paths.resolve(model_path))
test = split.load_split(paths.resolve(split_dir), "test")
evaluation.check_outputs(net, test)
info = evaluation.model_info(net, paths.resolve(train_summary))
out = paths.stage_dir(out_dir)
{**info, "test_images": test.images.shape, "labeled": test.labels is not None, "classes": ", ".join(test.class_names)}

# %% [markdown]
# ## Predictions
# One row per test image with every class probability (the source of DVC's confusion plot); an unlabeled split
# also gets submission.csv in Kaggle's `ImageId,Label` format.

# %%
probabilities = evaluation.predict_proba(net, test.images, config.batch_size)
predicted = probabilities.argmax(axis=1)
table = evaluation.write_predictions(out, test, probabilities)
table.head()

# %% [markdown]
# ## Metrics
# Macro averages weigh every class the same and ECE measures over-confidence; `dvc metrics diff` compares these.
# The accuracy's 95% interval (Wilson) says how sure it is: two models whose intervals overlap may not differ at all
# (`mnist compare A B` pairs two evaluations image by image).

# %%
metrics = evaluation.metrics(test, probabilities, info, config.calibration_bins)
evaluation.write_metrics(out / "metrics.json", metrics)
runtime.write_environment(out / "environment.json")  # versions, determinism, threads, CPU and its ISA flags
evaluation.metrics_table(metrics)

# %% [markdown]
# ## Per-class precision, recall and F1
# A good overall accuracy can hide a class the model handles badly; support is the number of test images of the class.

# %%
report = evaluation.per_class_report(test.labels, predicted, test.class_names)
report.to_csv(out / "per_class.csv")
report.round(4)

# %% [markdown]
# ## Confusion matrix
# Rows are the true class and columns the prediction, so off-diagonal cells are errors; row shares ignore class size.

# %%
matrix = evaluation.confusion_matrix(test.labels, predicted, test.num_classes)
evaluation.confusion_frame(matrix, test.class_names).to_csv(out / "confusion.csv")
fig = plots.confusion_heatmap(matrix, test.class_names)
fig.savefig(out / "confusion.png", dpi=100)
fig = plots.confusion_heatmap(matrix, test.class_names, normalize=True)
fig.savefig(out / "confusion_normalized.png", dpi=100)

# %% [markdown]
# ## Most confused pairs
# The largest off-diagonal cells: which digit the model takes for which, and how often.

# %%
pairs = evaluation.confused_pairs(matrix, test.class_names, config.top_pairs)
pairs.to_csv(out / "confused_pairs.csv", index=False)
pairs.round(4)

# %% [markdown]
# ## Misclassified test images
# The most confident errors come first, where label noise or a real weakness shows (unlabeled: least confident).

# %%
review = evaluation.review_table(test, probabilities, config.gallery_size)
review.to_csv(out / "gallery.csv", index=False)
fig = plots.gallery(test.images, review)
fig.savefig(out / "gallery.png", dpi=100)

# %% [markdown]
# ## Calibration
# A model that says 90 % should be right 90 % of the time: bars under the diagonal are over-confidence.

# %%
calibration = evaluation.calibration_table(test.labels, probabilities, config.calibration_bins)
calibration.to_csv(out / "calibration.csv", index=False)
fig = plots.reliability_diagram(calibration, metrics.get("ece"))
fig.savefig(out / "reliability.png", dpi=100)
fig = plots.confidence_histogram(probabilities, test.labels)
fig.savefig(out / "confidence.png", dpi=100)
