"""Small helpers of every layer: image files, atomic writes and locks, worker pools."""
