"""The tiny configuration of the CLI tests (a 3-class mixture, P = 83: seconds)."""

#: Flags of a tiny configuration: 120 samples of a 3-class Gaussian mixture in 6 dimensions,
#: an MLP 6-8-3 (P = 83), short SLQ runs.
TRAIN = [
    "--data", "gaussian_mixture", "--num-samples", "120", "--num-classes", "3",
    "--num-features", "6", "--model", "mlp", "--width", "8", "--depth", "1",
    "--epochs", "15", "--batch-size", "32", "--lr", "0.1", "--threads", "1", "--quiet",
]
#: The measurement flags (measure, decompose, run).
MEASURE = ["--num-probes", "3", "--num-steps", "20", "--bottom-k", "2"]
#: Every flag of the tiny run.
TINY = TRAIN + MEASURE
#: The files a full run writes.
RUN_FILES = [
    "config.toml", "model.pt", "training.npz", "training.json", "measurement.npz",
    "measurement.json", "decomposition.npz", "decomposition.json", "fit.npz", "fit.json",
    "summary.json", "report.md", "report.html", "figures/spectrum.png",
    "figures/predicted_vs_observed.png", "figures/relative_errors.png", "figures/gram.png",
    "figures/training.png",
]
