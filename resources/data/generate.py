"""How the bundled synthetic datasets were made (run from this folder to remake them).

anscombe-1.csv is not generated: it is the first of Anscombe's four data sets (F. J.
Anscombe, "Graphs in Statistical Analysis", The American Statistician 27(1), 1973), eleven
measured facts reprinted in countless textbooks and in R's ``datasets`` package.
"""

import numpy as np

rng = np.random.default_rng(2026)


def write(name, header, *columns):
    np.savetxt(f"{name}.csv", np.column_stack(columns), delimiter=",", header=",".join(header),
               comments="", fmt="%.5f")


x = np.sort(rng.uniform(-3, 3, 100))
write("noisy-line", ["x", "y"], x, 2.5 * x - 1.0 + rng.normal(0, 0.6, x.size))
x = np.sort(rng.uniform(-3, 3, 120))
write("quadratic", ["x", "y"], x, 0.8 * x**2 - 1.2 * x + 0.5 + rng.normal(0, 0.5, x.size))
x = np.sort(rng.uniform(0, 6, 150))
write("sine", ["x", "y"], x, 1.5 * np.sin(1.3 * x + 0.4) + rng.normal(0, 0.15, x.size))
n = 100
a = rng.normal([-1.2, -1.0], 0.6, (n, 2))
b = rng.normal([1.3, 1.1], 0.6, (n, 2))
points = np.vstack([a, b])
labels = np.r_[np.zeros(n), np.ones(n)]
# keep the classes linearly separable by a margin: drop points on the wrong side
keep = (points @ [1.0, 1.0] < -0.3) & (labels == 0) | (points @ [1.0, 1.0] > 0.3) & (labels == 1)
write("two-classes", ["x1", "x2", "label"], points[keep, 0], points[keep, 1], labels[keep])
xy = rng.uniform(-1, 1, (200, 2))
write("xor", ["x1", "x2", "label"], xy[:, 0], xy[:, 1], (xy[:, 0] * xy[:, 1] > 0).astype(float))
