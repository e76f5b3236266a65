"""Data: loaders for arrays, .npz, IDX, image folders and tables; preprocessing declared per likelihood."""
from vaekit.data.loaders import Dataset, infer_image_shape, load_array, load_splits
from vaekit.data.transforms import BatchTransform

__all__ = ["Dataset", "load_array", "load_splits", "infer_image_shape", "BatchTransform"]
