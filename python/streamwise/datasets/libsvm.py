"""The LIBSVM / SVMlight sparse text format: ``label idx:val idx:val ...``.

Column numbers are 1-based in the format (``zero_based=False``, the
default, maps column 1 to index 0), as LIBSVM's own tools and ``sw-serve
--format libsvm`` read them. ``#`` starts a comment. Gzip files are read
directly.
"""
import gzip

import numpy as np

__all__ = ["load_libsvm", "write_libsvm"]


def _open(path):
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt") if gz else open(path, "rt")


def load_libsvm(path, n_features=None, zero_based=False, dtype=np.float64):
    """Read a LIBSVM file into ``(X, y)``: X a scipy CSR matrix (or, without
    scipy, a tuple ``(data, indices, indptr, shape)``) and y float64.

    ``n_features`` fixes the width (it must cover every column); by default
    it is the largest column seen. A malformed line raises ValueError naming
    its line number.
    """
    labels, data, indices, indptr = [], [], [], [0]
    offset = 0 if zero_based else 1
    most = -1
    with _open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            try:
                labels.append(float(parts[0]))
                for item in parts[1:]:
                    j, v = item.split(":", 1)
                    j = int(j) - offset
                    if j < 0:
                        raise ValueError(f"column {j + offset} is below "
                                         f"{offset}")
                    indices.append(j)
                    data.append(float(v))
                    most = max(most, j)
            except ValueError as e:
                raise ValueError(f"{path}, line {lineno}: {e}") from None
            indptr.append(len(indices))
    width = most + 1 if n_features is None else int(n_features)
    if most >= width:
        raise ValueError(f"{path}: column {most + offset} does not fit "
                         f"n_features={width}")
    data = np.asarray(data, dtype=dtype)
    indices = np.asarray(indices, dtype=np.int32)
    indptr = np.asarray(indptr, dtype=np.int64 if len(indices) >= 2 ** 31
                        else np.int32)
    y = np.asarray(labels, dtype=np.float64)
    shape = (len(labels), width)
    try:
        import scipy.sparse as sp
    except ImportError:
        return (data, indices, indptr, shape), y
    return sp.csr_matrix((data, indices, indptr), shape=shape), y


def write_libsvm(path, X, y, zero_based=False):
    """Write rows of X (dense array or CSR) with labels y; values in %.17g so
    that reading them back gives the same doubles."""
    offset = 0 if zero_based else 1
    with open(path, "w") as f:
        for i in range(len(y)):
            if hasattr(X, "indptr"):
                a, b = X.indptr[i], X.indptr[i + 1]
                cols, vals = X.indices[a:b], X.data[a:b]
            else:
                row = np.asarray(X[i])
                cols = np.flatnonzero(row)
                vals = row[cols]
            items = " ".join(f"{int(j) + offset}:{float(v)!r}"
                             for j, v in zip(cols, vals))
            f.write(f"{float(y[i])!r} {items}\n")
